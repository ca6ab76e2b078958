#include "manifest.hpp"

#include <nlohmann/json.hpp>

#include <regex>

#include "bundle_files.hpp"
#include "json_schema.hpp"
#include "sha256.hpp"

namespace ttdeploy::detail {

const char* const kSchema = "tt-deploy.bundle/1";

namespace {

constexpr const char* kManifestFile = "manifest.json";

// manifest._read_json: the file's JSON object, its bytes first checked against `sha256` when given.
nlohmann::json read_json(const std::string& path, const std::string& what, const std::optional<std::string>* sha256) {
  auto raw = read_file(path);
  if (!raw) {
    throw Error(ErrorCode::missing_file,
                what + " not found: " + path + "; export a bundle with `ttdeploy export --skill NAME`");
  }
  if (sha256 != nullptr && (!sha256->has_value() || sha256_hex(*raw) != **sha256)) {
    throw Error(ErrorCode::hash_mismatch,
                path + " does not match its sha256 in manifest.json: it was edited - re-export the skill");
  }
  nlohmann::json data;
  try {
    data = nlohmann::json::parse(*raw);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::bundle, path + " is not valid JSON (" + e.what() + "); re-export the bundle");
  }
  if (!data.is_object()) {
    throw Error(ErrorCode::bundle, path + " holds a JSON " + std::string(data.type_name()) +
                                       ", not an object; re-export the bundle");
  }
  return data;
}

void check_schema(const nlohmann::json& data, const std::string& path) {  // manifest._check_schema
  auto it = data.find("schema");
  if (it == data.end() || !it->is_string() || it->get<std::string>() != kSchema) {
    std::string got = it == data.end() ? "None" : it->dump();
    throw Error(ErrorCode::schema, path + " has schema " + got + ", this tt-deploy reads '" + kSchema +
                                       "'; re-export the bundle with this version of tt-deploy");
  }
}

std::optional<std::string> optional_string(const nlohmann::json& data, const char* key) {
  auto it = data.find(key);
  if (it == data.end() || it->is_null()) return std::nullopt;
  return it->get<std::string>();
}

std::vector<TensorSpec> tensor_specs(const nlohmann::json& list) {
  std::vector<TensorSpec> out;
  for (const auto& t : list) {
    TensorSpec spec{t.at("name").get<std::string>(), {}, t.at("dtype").get<std::string>()};
    for (const auto& d : t.at("shape")) spec.shape.push_back(d.is_number_integer() ? d.get<std::int64_t>() : kSymbolicDim);
    out.push_back(std::move(spec));
  }
  return out;
}

std::size_t dimension(const nlohmann::json& v, const std::string& where) {
  auto n = v.get<std::int64_t>();
  if (n < 0) throw Error(ErrorCode::bundle, where + ": " + std::to_string(n) + " is negative; re-export the bundle");
  return static_cast<std::size_t>(n);
}

BundleManifest to_manifest(const nlohmann::json& d, const std::string& where) {
  BundleManifest m;
  m.bfm_sha256 = d.at("bfm").at("sha256").get<std::string>();
  for (const auto& g : d.at("token_groups")) {
    m.token_groups.push_back({g.at("name").get<std::string>(), dimension(g.at("n_tokens"), where + ".token_groups"),
                              dimension(g.at("feat_dim"), where + ".token_groups"),
                              optional_string(g, "mask_name").value_or("")});
  }
  m.task_token_name = d.at("task_token_name").get<std::string>();
  m.task_obs_name = d.at("task_obs_name").get<std::string>();
  m.actions_name = d.at("actions_name").get<std::string>();
  m.action_dim = dimension(d.at("action_dim"), where + ".action_dim");
  m.action_clamp = d.at("action_clamp").get<double>();
  m.control_dt = d.at("control_dt").get<double>();
  m.skills = d.at("skills").get<std::vector<std::string>>();
  for (const auto& g : d.at("graphs")) {
    m.graphs.push_back({g.at("path").get<std::string>(), g.at("role").get<std::string>(), optional_string(g, "skill"),
                        g.at("batch").get<std::string>(), g.at("sha256").get<std::string>(),
                        tensor_specs(g.at("inputs")), tensor_specs(g.at("outputs")),
                        g.contains("precision") ? g.at("precision").get<std::string>() : "fp32"});
  }
  m.content = d.contains("content") ? d.at("content").get<std::string>() : "";
  m.default_skill = optional_string(d, "default_skill");
  auto hashes = d.find("skill_sha256");
  m.has_skill_sha256 = hashes != d.end() && !hashes->is_null();
  if (m.has_skill_sha256) {  // dict[str, str]: Python checks it is a dict, not its values
    for (const auto& item : hashes->items()) {
      if (item.value().is_null()) continue;  // Python: .get(name) is None -> "no entry"
      m.skill_sha256[item.key()] =
          item.value().is_string() ? std::optional<std::string>(item.value().get<std::string>()) : std::nullopt;
    }
  }
  return m;
}

// `name`: the skill asked for, which every later lookup uses (as Python does; skill.json's own `name` is
// validated, not used).
SkillManifest to_skill(const nlohmann::json& data, const std::string& path, const std::string& name) {
  SkillManifest sk;
  sk.name = name;
  sk.task_obs_dim = dimension(data.at("task_obs_dim"), path + ".task_obs_dim");
  sk.encoder_obs_dim = dimension(data.at("encoder").at("obs_dim"), path + ".encoder.obs_dim");
  sk.bfm_sha256 = data.at("bfm_sha256").get<std::string>();
  sk.visible_groups = data.at("visible_groups").get<std::vector<std::string>>();
  if (data.contains("graphs")) {
    for (const auto& item : data.at("graphs").items()) {
      sk.graphs[item.key()] =
          item.value().is_string() ? std::optional<std::string>(item.value().get<std::string>()) : std::nullopt;
    }
  }
  sk.has_task_prior = data.contains("task_prior") && !data.at("task_prior").is_null();
  return sk;
}

}  // namespace

const GraphSpec& BundleManifest::graph(const std::string& role, const std::optional<std::string>& skill, bool dynamic,
                                       const std::string& precision) const {
  const std::string want = dynamic ? "dynamic" : "static";
  for (const GraphSpec& g : graphs) {
    if (g.role == role && g.skill == skill && g.batch == want && g.precision == precision) return g;
  }
  std::string message = "manifest lists no " + want + " " + (precision == "fp32" ? "" : precision + " ") + role + " graph";
  if (skill) message += " for skill '" + *skill + "'";
  throw Error(ErrorCode::bundle, message);
}

BundleManifest read_manifest(const std::string& bundle_dir) {
  const std::string path = join_path(bundle_dir, kManifestFile);
  nlohmann::json data = read_json(path, "bundle manifest", nullptr);
  check_schema(data, path);
  validate_fields(data, "BundleManifest", path);
  try {
    return to_manifest(data, path);
  } catch (const nlohmann::json::exception& e) {  // validated above: only a gap in this reader gets here
    throw Error(ErrorCode::bundle, path + ": " + e.what() + "; re-export the bundle");
  }
}

std::string content_dir(const std::string& bundle_dir, const BundleManifest& manifest) {
  static const std::regex version("v[1-9][0-9]*");  // manifest.VERSION_RE: no path out of the bundle
  if (!manifest.content.empty() && !std::regex_match(manifest.content, version)) {
    throw Error(ErrorCode::bundle, "manifest content '" + manifest.content +
                                       "' is not a version dir name (v1, v2, ...); re-export the bundle");
  }
  return join_path(bundle_dir, manifest.content);
}

SkillManifest read_skill(const std::string& bundle_dir, const std::string& name, const BundleManifest& manifest) {
  const std::optional<std::string>* sha = nullptr;
  if (manifest.has_skill_sha256) {  // a manifest that hashes skills must hash every one
    auto it = manifest.skill_sha256.find(name);
    if (it == manifest.skill_sha256.end()) {
      throw Error(ErrorCode::bundle, join_path(bundle_dir, kManifestFile) + ": skill_sha256 has no entry for skill '" +
                                         name + "'; the manifest was edited - re-export the bundle");
    }
    sha = &it->second;
  }
  const std::string path = join_path(join_path(content_dir(bundle_dir, manifest), "skills/" + name), "skill.json");
  nlohmann::json data = read_json(path, "skill manifest of '" + name + "'", sha);
  check_schema(data, path);
  auto prior = data.find("prior");
  if (prior != data.end()) {
    if (!prior->is_null()) {
      throw Error(ErrorCode::bundle, path + ": static prior tokens (prior.npz) are no longer read; re-export skill '" +
                                         name + "' and feed its task_prior prompt every step (docs/embedding.md)");
    }
    data.erase(prior);  // null in skill.json files of earlier schema-1 exports
  }
  validate_fields(data, "SkillManifest", path);
  try {
    return to_skill(data, path, name);
  } catch (const nlohmann::json::exception& e) {  // validated above: only a gap in this reader gets here
    throw Error(ErrorCode::bundle, path + ": " + e.what() + "; re-export the bundle");
  }
}

std::map<std::string, std::optional<std::string>> listed_graphs(const BundleManifest& manifest,
                                                                const std::string& skill) {
  std::map<std::string, std::optional<std::string>> out;
  for (const GraphSpec& g : manifest.graphs) {
    if (g.skill == skill) out[g.path] = g.sha256;
  }
  return out;
}

}  // namespace ttdeploy::detail
