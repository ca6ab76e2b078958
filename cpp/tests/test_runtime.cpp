// ttdeploy::Runtime on a real bundle (TT_DEPLOY_TEST_BUNDLE): loading, switching, the input rules and
// every typed error of tt_deploy.runtime.SkillRuntime.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "harness.hpp"
#include "manifest.hpp"
#include "sha256.hpp"
#include "support.hpp"

using ttdeploy::ErrorCode;
using ttdeploy::Options;
using ttdeploy::Runtime;
using nlohmann::json;

namespace {

Options one_thread() {
  Options o;
  o.num_threads = 1;
  return o;
}

json read_json(const std::string& path) { return json::parse(tt_test::read_text(path)); }
void write_json(const std::string& path, const json& j) { tt_test::write_text(path, j.dump(2)); }

std::string skill_json(const std::string& bundle, const std::string& skill) {
  return tt_test::content_dir(bundle) + "/skills/" + skill + "/skill.json";
}

// After an edit on purpose, fix the manifest's skill_sha256 so that only the checks behind it are left.
void rehash_skill(const std::string& bundle, const std::string& skill) {
  json m = read_json(bundle + "/manifest.json");
  m["skill_sha256"][skill] = ttdeploy::detail::sha256_hex(tt_test::read_text(skill_json(bundle, skill)));
  write_json(bundle + "/manifest.json", m);
}

// The first resident skill without / with a prior prompt, or "" when the bundle has none.
std::string find_skill(const Runtime& rt, bool prior) {
  for (const auto& s : rt.skills()) {
    if (rt.has_task_prior(s) == prior) return s;
  }
  return "";
}

bool all_finite(const std::vector<float>& a) {
  return std::all_of(a.begin(), a.end(), [](float x) { return std::isfinite(x); });
}

}  // namespace

TT_TEST(runtime, loads_every_skill_and_starts_on_the_default_skill) {
  const std::string bundle = tt_test::bundle_or_skip();
  Runtime rt(bundle, one_thread());
  const json m = read_json(bundle + "/manifest.json");
  CHECK(rt.skills() == m.at("skills").get<std::vector<std::string>>());
  CHECK_EQ(rt.active(), m.value("default_skill", rt.skills().front()));
  CHECK_EQ(rt.action_dim(), m.at("action_dim").get<std::size_t>());
  CHECK_EQ(std::string(rt.backend_name()), std::string("openvino"));
}

TT_TEST(runtime, actions_are_finite_clamped_repeatable_and_per_skill) {
  const std::string bundle = tt_test::bundle_or_skip();
  Runtime rt(bundle, one_thread());
  CHECK(rt.skills().size() >= 2);
  std::vector<std::vector<float>> first;
  for (const auto& skill : rt.skills()) {
    rt.switch_skill(skill);
    CHECK_EQ(rt.active(), skill);
    tt_test::Call call = tt_test::make_call(rt, skill, 7);
    std::fill(call.task_obs.begin(), call.task_obs.end(), 0.0f);  // only the encoders differ between skills
    const auto a = tt_test::act(rt, call);
    CHECK(all_finite(a));
    CHECK(std::all_of(a.begin(), a.end(), [&](float x) { return std::fabs(x) <= rt.action_clamp(); }));
    CHECK(a == tt_test::act(rt, call));  // bound buffers are rewritten each call: same inputs, same actions
    first.push_back(a);
  }
  CHECK(first[0] != first[1]);
  rt.switch_skill(rt.skills().front());  // switching back: the first skill's actions again
  tt_test::Call call = tt_test::make_call(rt, rt.skills().front(), 7);
  std::fill(call.task_obs.begin(), call.task_obs.end(), 0.0f);
  CHECK(tt_test::act(rt, call) == first[0]);
}

TT_TEST(runtime, unknown_skills_are_refused) {
  const std::string bundle = tt_test::bundle_or_skip();
  Runtime rt(bundle, one_thread());
  const std::string msg = CHECK_ERROR(ErrorCode::unknown_name, rt.switch_skill("no-such-skill"));
  CHECK(msg.find("unknown resident skill 'no-such-skill'") != std::string::npos);
  Options only = one_thread();
  only.skills = {"no-such-skill"};
  CHECK_ERROR(ErrorCode::unknown_name, Runtime(bundle, only));
  only.skills = {rt.skills().back()};
  Runtime one(bundle, only);
  CHECK(one.skills() == only.skills);
  CHECK_ERROR(ErrorCode::unknown_name, one.switch_skill(rt.skills().front()));  // in the bundle, not resident
}

TT_TEST(runtime, edited_or_missing_files_are_typed_bundle_errors) {
  const std::string bundle = tt_test::bundle_or_skip();
  const std::string skill = read_json(bundle + "/manifest.json").at("skills")[0].get<std::string>();
  {
    tt_test::BundleCopy copy(bundle);
    const std::string path = skill_json(copy.path, skill);
    tt_test::write_text(path, tt_test::read_text(path) + " ");  // one byte more, same JSON
    const std::string msg = CHECK_ERROR(ErrorCode::hash_mismatch, Runtime(copy.path, one_thread()));
    CHECK(msg.find("does not match its sha256 in manifest.json: it was edited") != std::string::npos);
  }
  {
    tt_test::BundleCopy copy(bundle);
    const std::string path = tt_test::content_dir(copy.path) + "/skills/" + skill + "/fused.onnx";
    std::string bytes = tt_test::read_text(path);
    bytes[bytes.size() - 10] ^= 0x20;
    tt_test::write_text(path, bytes);
    CHECK_ERROR(ErrorCode::hash_mismatch, Runtime(copy.path, one_thread()));
    std::filesystem::remove(path);
    CHECK_ERROR(ErrorCode::missing_file, Runtime(copy.path, one_thread()));
  }
  {
    tt_test::BundleCopy copy(bundle);
    json m = read_json(copy.path + "/manifest.json");
    m["skill_sha256"].erase(skill);  // deleting the entry must not turn the check off
    write_json(copy.path + "/manifest.json", m);
    const std::string msg = CHECK_ERROR(ErrorCode::bundle, Runtime(copy.path, one_thread()));
    CHECK(msg.find("skill_sha256 has no entry for skill '" + skill + "'") != std::string::npos);
    m["schema"] = "tt-deploy.bundle/2";
    write_json(copy.path + "/manifest.json", m);
    CHECK_ERROR(ErrorCode::schema, Runtime(copy.path, one_thread()));
    std::filesystem::remove(copy.path + "/manifest.json");
    CHECK_ERROR(ErrorCode::missing_file, Runtime(copy.path, one_thread()));
  }
}

TT_TEST(runtime, consistent_edits_behind_the_hash_are_still_caught) {
  const std::string bundle = tt_test::bundle_or_skip();
  const std::string skill = read_json(bundle + "/manifest.json").at("skills")[0].get<std::string>();
  auto edited = [&](const std::function<void(json&)>& edit) {
    auto copy = std::make_unique<tt_test::BundleCopy>(bundle);
    json sk = read_json(skill_json(copy->path, skill));
    edit(sk);
    write_json(skill_json(copy->path, skill), sk);
    rehash_skill(copy->path, skill);
    return copy;
  };
  auto width = edited([](json& sk) { sk["task_obs_dim"] = sk["task_obs_dim"].get<int>() + 2; });
  CHECK(CHECK_ERROR(ErrorCode::bundle, Runtime(width->path, one_thread())).find("but its encoder graph takes") !=
        std::string::npos);
  auto groups = edited([](json& sk) { sk["visible_groups"].push_back("motion_text_embeddings"); });
  CHECK(CHECK_ERROR(ErrorCode::bundle, Runtime(groups->path, one_thread())).find("but its fused graph takes") !=
        std::string::npos);
  auto hashes = edited([](json& sk) { sk["graphs"].erase(sk["graphs"].begin()); });
  CHECK(CHECK_ERROR(ErrorCode::bundle, Runtime(hashes->path, one_thread())).find("graph hashes in skill.json") !=
        std::string::npos);
  auto bfm = edited([](json& sk) { sk["bfm_sha256"] = std::string(64, '0'); });
  CHECK_ERROR(ErrorCode::bundle, Runtime(bfm->path, one_thread()));
  auto unknown_field = edited([](json& sk) { sk["new_field"] = 1; });
  CHECK_ERROR(ErrorCode::bundle, Runtime(unknown_field->path, one_thread()));
}

TT_TEST(runtime, bad_inputs_are_input_errors) {
  const std::string bundle = tt_test::bundle_or_skip();
  Runtime rt(bundle, one_thread());
  const std::string skill = rt.active();
  std::vector<float> out(rt.action_dim());
  auto refused_views = [&](const std::vector<ttdeploy::Input>& views, const tt_test::Call& call) {
    return CHECK_ERROR(ErrorCode::input,
                       rt.act_into(views, call.task_obs.data(), call.task_obs.size(), out.data(), out.size()));
  };
  auto refused = [&](const tt_test::Call& call) { return refused_views(call.inputs(), call); };
  {
    auto call = tt_test::make_call(rt, skill, 1);
    call.data("obs")[3] = std::nanf("");
    CHECK(refused(call).find("input 'obs' contains NaN or inf") != std::string::npos);
  }
  {
    auto call = tt_test::make_call(rt, skill, 1);
    call.task_obs[0] = INFINITY;
    CHECK(refused(call).find("contains NaN or inf") != std::string::npos);
  }
  {
    auto call = tt_test::make_call(rt, skill, 1);
    auto views = call.inputs();
    views[0].count -= 1;  // a wrong shape
    CHECK(refused_views(views, call).find("must have shape") != std::string::npos);
    call.task_obs.push_back(0.0f);
    refused(call);
  }
  {
    auto call = tt_test::make_call(rt, skill, 1);
    auto views = call.inputs();
    views[0].dtype = ttdeploy::DType::boolean;
    CHECK(refused_views(views, call).find("must have dtype float32, got bool") != std::string::npos);
  }
  {
    auto call = tt_test::make_call(rt, skill, 1);
    call.add_floats("no_such_group", {1.0f});
    CHECK(refused(call).find("unknown input 'no_such_group'") != std::string::npos);
    call = tt_test::make_call(rt, skill, 1);
    auto views = call.inputs();
    views.push_back(views[0]);
    CHECK(refused_views(views, call).find("given twice") != std::string::npos);
  }
  {
    auto call = tt_test::make_call(rt, skill, 1);
    call.remove("obs");
    CHECK(refused(call).find("input 'obs' is required") != std::string::npos);
  }
  {
    auto call = tt_test::make_call(rt, skill, 1);
    CHECK_ERROR(ErrorCode::input, rt.act_into(call.inputs(), call.task_obs.data(), call.task_obs.size(), out.data(), 3));
    CHECK_ERROR(ErrorCode::input, rt.act_into(call.inputs(), call.task_obs.data(), call.task_obs.size(), nullptr, out.size()));
  }
}

TT_TEST(runtime, hidden_groups_follow_the_python_rules) {
  const std::string bundle = tt_test::bundle_or_skip();
  Runtime rt(bundle, one_thread());
  const std::string skill = find_skill(rt, false);
  if (skill.empty()) throw tt_test::Skip("the bundle has no skill without a prior prompt");
  rt.switch_skill(skill);
  const auto& visible = rt.visible_groups(skill);
  const ttdeploy::TokenGroup* dropped = nullptr;  // a maskable group this skill's graph does not take
  const ttdeploy::TokenGroup* kept = nullptr;     // a maskable group it takes
  for (const auto& g : rt.token_groups()) {
    const bool takes = std::find(visible.begin(), visible.end(), g.name) != visible.end();
    if (!g.mask_name.empty() && !takes && !dropped) dropped = &g;
    if (!g.mask_name.empty() && takes && !kept) kept = &g;
  }
  CHECK(dropped != nullptr && kept != nullptr);
  const auto base = tt_test::make_call(rt, skill, 3);
  std::vector<float> out(rt.action_dim());

  auto call = base;  // a dropped group given fully hidden: accepted, same actions as leaving it out
  call.add_floats(dropped->name, std::vector<float>(dropped->n_tokens * dropped->feat_dim, 0.5f));
  call.add_mask(dropped->mask_name, std::vector<unsigned char>(dropped->n_tokens, 0));
  CHECK(tt_test::act(rt, call) == tt_test::act(rt, base));
  call.remove(dropped->mask_name);  // given without its mask: visible, and the graph would drop it
  CHECK(CHECK_ERROR(ErrorCode::input, tt_test::act(rt, call)).find("fused graph drops that group") != std::string::npos);
  call = base;  // a mask that shows tokens of a group not given
  call.add_mask(dropped->mask_name, std::vector<unsigned char>(dropped->n_tokens, 1));
  CHECK(CHECK_ERROR(ErrorCode::input, tt_test::act(rt, call)).find("marks tokens visible but") != std::string::npos);

  call = base;  // a kept group left out == zeros with its mask all False
  call.remove(kept->name);
  call.remove(kept->mask_name);
  auto hidden = base;
  std::fill(hidden.data(kept->name).begin(), hidden.data(kept->name).end(), 0.0f);
  hidden.remove(kept->mask_name);
  hidden.add_mask(kept->mask_name, std::vector<unsigned char>(kept->n_tokens, 0));
  CHECK(tt_test::act(rt, call) == tt_test::act(rt, hidden));
  call = base;  // its mask left out == every token visible
  call.remove(kept->mask_name);
  auto shown = base;
  shown.remove(kept->mask_name);
  shown.add_mask(kept->mask_name, std::vector<unsigned char>(kept->n_tokens, 1));
  CHECK(tt_test::act(rt, call) == tt_test::act(rt, shown));
  auto twos = base;  // a C caller's mask byte 2 is True, exactly like 1
  twos.remove(kept->mask_name);
  twos.add_mask(kept->mask_name, std::vector<unsigned char>(kept->n_tokens, 2));
  CHECK(tt_test::act(rt, twos) == tt_test::act(rt, shown));
}

TT_TEST(runtime, prior_prompt_skills_refuse_a_hidden_prompt) {
  const std::string bundle = tt_test::bundle_or_skip();
  Runtime rt(bundle, one_thread());
  const std::string skill = find_skill(rt, true);
  if (skill.empty()) throw tt_test::Skip("the bundle has no skill with a task_prior");
  rt.switch_skill(skill);
  auto call = tt_test::make_call(rt, skill, 5);
  CHECK(all_finite(tt_test::act(rt, call)));
  const std::string prompt = "masked_mimic_target_poses";
  const auto& g = tt_test::group(rt, prompt);
  auto hidden = call;
  hidden.remove(g.mask_name);
  hidden.add_mask(g.mask_name, std::vector<unsigned char>(g.n_tokens, 0));
  CHECK(CHECK_ERROR(ErrorCode::input, tt_test::act(rt, hidden)).find("prior prompt visible") != std::string::npos);
  hidden.remove(prompt);
  hidden.remove(g.mask_name);
  CHECK_ERROR(ErrorCode::input, tt_test::act(rt, hidden));
  Options allow = one_thread();
  allow.allow_hidden_prior = true;
  allow.skills = {skill};
  Runtime opted(bundle, allow);
  CHECK(all_finite(tt_test::act(opted, hidden)));
}

TT_TEST(runtime, use_after_close_is_refused) {
  const std::string bundle = tt_test::bundle_or_skip();
  Runtime rt(bundle, one_thread());
  const auto call = tt_test::make_call(rt, rt.active(), 1);
  rt.close();
  rt.close();  // idempotent, as SkillRuntime.close
  CHECK(CHECK_ERROR(ErrorCode::closed, tt_test::act(rt, call)).find("closed") != std::string::npos);
  CHECK_ERROR(ErrorCode::closed, rt.switch_skill(rt.skills().front()));
  CHECK_EQ(rt.task_obs_dim(rt.active()), call.task_obs.size());  // what was read stays readable
}

TT_TEST(runtime, a_moved_from_runtime_is_refused_not_dereferenced) {
  const std::string bundle = tt_test::bundle_or_skip();
  Runtime rt(bundle, one_thread());
  const auto call = tt_test::make_call(rt, rt.active(), 1);
  Runtime moved(std::move(rt));
  CHECK(all_finite(tt_test::act(moved, call)));
  CHECK(CHECK_ERROR(ErrorCode::closed, tt_test::act(rt, call)).find("moved from") != std::string::npos);  // NOLINT
  CHECK_ERROR(ErrorCode::closed, rt.switch_skill(moved.skills().front()));  // NOLINT(bugprone-use-after-move)
}

TT_TEST(runtime, overlapping_calls_are_refused_not_waited_for) {
  const std::string bundle = tt_test::bundle_or_skip();
  auto hooks = std::make_shared<tt_test::RunHooks>();
  std::mutex mutex;
  std::condition_variable changed;
  bool inside = false, release = false;
  hooks->before_run = [&] {  // hold the first call inside its graph run until the main thread says so
    std::unique_lock<std::mutex> lock(mutex);
    if (release) return;
    inside = true;
    changed.notify_all();
    changed.wait(lock, [&] { return release; });
  };
  Runtime rt(bundle, one_thread(), tt_test::hooked_openvino(hooks));
  const auto call = tt_test::make_call(rt, rt.active(), 2);
  std::vector<float> first;
  std::thread worker([&] { first = tt_test::act(rt, call); });
  {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return inside; });
  }
  CHECK(CHECK_ERROR(ErrorCode::concurrent_use, tt_test::act(rt, call)).find("not thread-safe") != std::string::npos);
  CHECK_ERROR(ErrorCode::concurrent_use, rt.close());  // nor can the graphs be freed under a running call
  {
    std::lock_guard<std::mutex> lock(mutex);
    release = true;
  }
  changed.notify_all();
  worker.join();
  CHECK(first == tt_test::act(rt, call));  // the refused calls changed nothing
}
