#include "tt_deploy/runtime.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "bundle_files.hpp"
#include "input_rules.hpp"
#include "manifest.hpp"
#include "onnx_metadata.hpp"
#include "skill_checks.hpp"
#include "tt_deploy/backend.hpp"

namespace ttdeploy {
namespace {

std::string known_list(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

[[noreturn]] void unknown(const std::string& kind, std::string_view name, const std::vector<std::string>& known) {
  throw Error(ErrorCode::unknown_name, "unknown " + kind + " '" + std::string(name) + "'; known: " + known_list(known));
}

std::vector<std::string> resident_names(const detail::BundleManifest& manifest, const Options& options) {
  std::vector<std::string> names;
  for (const auto& s : options.skills.empty() ? manifest.skills : options.skills) {
    if (std::find(manifest.skills.begin(), manifest.skills.end(), s) == manifest.skills.end()) {
      unknown("skill", s, manifest.skills);
    }
    if (std::find(names.begin(), names.end(), s) == names.end()) names.push_back(s);
  }
  if (names.empty()) throw Error(ErrorCode::input, "no skills to load: the bundle or the skills argument is empty");
  return names;
}

// The one output every graph ends with: the manifest's actions, batch 1.
void check_actions_output(const detail::GraphSpec& spec, const detail::BundleManifest& manifest) {
  const std::vector<std::int64_t> want{1, static_cast<std::int64_t>(manifest.action_dim)};
  if (spec.outputs.size() != 1 || spec.outputs[0].name != manifest.actions_name || spec.outputs[0].shape != want ||
      spec.outputs[0].dtype != "float32") {
    throw Error(ErrorCode::bundle, spec.path + ": the manifest lists outputs other than one float32 '" +
                                       manifest.actions_name + "' of shape (1, " + std::to_string(manifest.action_dim) +
                                       "); re-export the bundle");
  }
}

// The non-blocking overlap check of SkillRuntime._acquire: a second call is refused, never waited for.
class CallGuard {
 public:
  explicit CallGuard(std::atomic<bool>& busy) : busy_(busy) {
    if (busy_.exchange(true, std::memory_order_acquire)) {
      throw Error(ErrorCode::concurrent_use,
                  "another thread is inside this Runtime; it is not thread-safe - use one runtime per thread");
    }
  }
  ~CallGuard() { busy_.store(false, std::memory_order_release); }
  CallGuard(const CallGuard&) = delete;
  CallGuard& operator=(const CallGuard&) = delete;

 private:
  std::atomic<bool>& busy_;
};

struct ResidentSkill {
  std::unique_ptr<BoundGraph> graph;
  std::unique_ptr<detail::SkillInputs> inputs;
};

}  // namespace

struct Runtime::Impl {
  Impl(const std::string& bundle_dir, const Options& opts, std::unique_ptr<Backend> given)
      : options(opts), manifest(detail::read_manifest(bundle_dir)), layout(manifest), scratch(layout.size()) {
    names = resident_names(manifest, options);
    std::vector<detail::SkillManifest> cards;  // every skill.json is checked before any graph is read
    for (const auto& name : names) {
      cards.push_back(detail::read_skill(bundle_dir, name, manifest));
      detail::check_skill(manifest, cards.back());
      task_obs_dims.push_back(cards.back().task_obs_dim);
      visible.push_back(cards.back().visible_groups);
      priors.push_back(cards.back().has_task_prior);
    }
    backend = given ? std::move(given) : make_openvino_backend(options.num_threads);
    const std::string content = detail::content_dir(bundle_dir, manifest);
    for (const auto& card : cards) skills.push_back(load(content, card));
    const auto it = manifest.default_skill ? std::find(names.begin(), names.end(), *manifest.default_skill) : names.end();
    active = it == names.end() ? 0 : static_cast<std::size_t>(it - names.begin());
  }

  // One skill's static fp32 fused graph: hashed, its metadata checked, compiled and bound.
  ResidentSkill load(const std::string& content, const detail::SkillManifest& card) {
    const detail::GraphSpec& spec = manifest.graph("fused", card.name, false);
    check_actions_output(spec, manifest);
    const std::string path = detail::join_path(content, spec.path);
    const std::string bytes = detail::read_verified(path, spec.sha256);
    const auto meta = detail::onnx_metadata(bytes);
    if (!meta) throw Error(ErrorCode::bundle, path + " is not a loadable ONNX graph; re-export the bundle");
    detail::check_metadata(*meta, spec.role, spec.skill.value_or(""), manifest.bfm_sha256, path);
    ResidentSkill skill;
    skill.inputs = std::make_unique<detail::SkillInputs>(layout, manifest, card, spec.inputs, !options.allow_hidden_prior);
    skill.graph = backend->compile(bytes, path, spec.inputs, spec.outputs);
    return skill;
  }

  std::size_t index_of(std::string_view skill) const {
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (names[i] == skill) return i;
    }
    unknown("resident skill", skill, names);
  }

  void require_open() const {
    if (closed.load(std::memory_order_acquire)) throw Error(ErrorCode::closed, "this Runtime is closed; create a new one");
  }

  Options options;
  detail::BundleManifest manifest;
  detail::TokenLayout layout;  // SkillInputs keep a reference: Impl never moves (held by unique_ptr)
  std::vector<std::string> names;
  // per resident skill, kept after close() as Python keeps `skills`
  std::vector<std::size_t> task_obs_dims;
  std::vector<std::vector<std::string>> visible;
  std::vector<bool> priors;
  std::unique_ptr<Backend> backend;  // declared before the graphs it compiled, so it outlives them
  std::vector<ResidentSkill> skills;
  detail::CallScratch scratch;  // used only inside a CallGuard
  std::atomic<std::size_t> active{0};
  std::atomic<bool> busy{false}, closed{false};
  std::atomic<std::uint64_t> nonfinite{0};
};

Runtime::Runtime(const std::string& bundle_dir, const Options& options) : Runtime(bundle_dir, options, nullptr) {}

Runtime::Runtime(const std::string& bundle_dir, const Options& options, std::unique_ptr<Backend> backend)
    : impl_(std::make_unique<Impl>(bundle_dir, options, std::move(backend))) {}

Runtime::~Runtime() = default;
Runtime::Runtime(Runtime&&) noexcept = default;
Runtime& Runtime::operator=(Runtime&&) noexcept = default;

Runtime::Impl& Runtime::impl() const {
  if (!impl_) throw Error(ErrorCode::closed, "this Runtime was moved from: use the object it was moved into");
  return *impl_;
}

void Runtime::switch_skill(std::string_view skill) {
  impl().require_open();
  impl().active.store(impl().index_of(skill), std::memory_order_release);
}

void Runtime::act_into(const Input* inputs, std::size_t n_inputs, const float* task_obs, std::size_t task_obs_count,
                       float* out, std::size_t out_count) {
  Impl& m = impl();
  const std::size_t dim = m.manifest.action_dim;
  if (out == nullptr) throw Error(ErrorCode::input, "out is a null pointer; pass a buffer of " + std::to_string(dim) + " floats");
  if (out_count != dim) {
    throw Error(ErrorCode::input, "out must have shape (1, " + std::to_string(dim) + ") or (" + std::to_string(dim) +
                                      ",), got " + std::to_string(out_count) + " elements");
  }
  const std::size_t active = m.active.load(std::memory_order_acquire);
  {
    CallGuard guard(m.busy);
    m.require_open();  // after the guard: close() takes it too, so the graphs cannot go away mid-call
    ResidentSkill& skill = m.skills[active];
    skill.inputs->fill(inputs, n_inputs, task_obs, task_obs_count, *skill.graph, m.scratch);
    skill.graph->run();
    std::memcpy(out, skill.graph->output_data(), dim * sizeof(float));
  }
  if (std::all_of(out, out + dim, [](float a) { return std::isfinite(a); })) return;
  const std::uint64_t count = ++m.nonfinite;
  std::fill(out, out + dim, 0.0f);  // the default pose offsets; when raising too, so `out` never holds NaN
  if (m.options.nonfinite == NonFinitePolicy::zeros) return;
  throw Error(ErrorCode::nonfinite_actions,
              "skill '" + m.names[active] + "' returned NaN/inf actions (call " + std::to_string(count) +
                  " with them); the bundle's weights or the inputs are broken - run `ttdeploy verify`, or open the "
                  "runtime with NonFinitePolicy::zeros to fall back to the default pose");
}

void Runtime::close() {
  CallGuard guard(impl().busy);
  impl().skills.clear();
  impl().closed.store(true, std::memory_order_release);
}

const std::string& Runtime::active() const { return impl().names[impl().active.load(std::memory_order_acquire)]; }
const std::vector<std::string>& Runtime::skills() const { return impl().names; }
std::size_t Runtime::task_obs_dim(std::string_view skill) const {
  return impl().task_obs_dims[impl().index_of(skill)];
}
const std::vector<std::string>& Runtime::visible_groups(std::string_view skill) const {
  return impl().visible[impl().index_of(skill)];
}
bool Runtime::has_task_prior(std::string_view skill) const { return impl().priors[impl().index_of(skill)]; }
std::size_t Runtime::action_dim() const { return impl().manifest.action_dim; }
double Runtime::action_clamp() const { return impl().manifest.action_clamp; }
double Runtime::control_dt() const { return impl().manifest.control_dt; }
const std::string& Runtime::task_obs_name() const { return impl().manifest.task_obs_name; }
const std::vector<TokenGroup>& Runtime::token_groups() const { return impl().manifest.token_groups; }
std::uint64_t Runtime::nonfinite_count() const { return impl().nonfinite.load(); }
const char* Runtime::backend_name() const { return impl().backend->name(); }

}  // namespace ttdeploy
