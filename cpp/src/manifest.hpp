// manifest.json and skills/<name>/skill.json, read and checked as tt_deploy/runtime/manifest.py reads
// them. Only the fields the runtime uses are kept; every field is still validated (json_schema.hpp).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tt_deploy/backend.hpp"
#include "tt_deploy/runtime.hpp"

namespace ttdeploy::detail {

extern const char* const kSchema;  // "tt-deploy.bundle/1"

struct GraphSpec {
  std::string path;  // relative to the version dir
  std::string role;  // "bfm" | "encoder" | "fused" | "bfm-specialised"
  std::optional<std::string> skill;
  std::string batch;  // "static" | "dynamic"
  std::string sha256;
  std::vector<TensorSpec> inputs, outputs;
  std::string precision;  // "fp32" unless a reduced-precision graph
};

struct BundleManifest {
  std::string bfm_sha256;
  std::vector<TokenGroup> token_groups;
  std::string task_token_name, task_obs_name, actions_name;
  std::size_t action_dim = 0;
  double action_clamp = 0, control_dt = 0;
  std::vector<std::string> skills;
  std::vector<GraphSpec> graphs;
  std::string content;  // version dir ("v3"), "" for bundles from before versions
  std::optional<std::string> default_skill;
  bool has_skill_sha256 = false;                           // false: an older bundle without the field
  std::map<std::string, std::optional<std::string>> skill_sha256;  // nullopt: an entry that is not a string

  // BundleManifest.graph: the graph of this role/skill/batch kind/precision; Error(bundle) if none.
  const GraphSpec& graph(const std::string& role, const std::optional<std::string>& skill, bool dynamic,
                         const std::string& precision = "fp32") const;
};

struct SkillManifest {
  std::string name;
  std::size_t task_obs_dim = 0;
  std::size_t encoder_obs_dim = 0;
  std::string bfm_sha256;
  std::vector<std::string> visible_groups;
  std::map<std::string, std::optional<std::string>> graphs;  // path -> sha256 (nullopt: not a string)
  bool has_task_prior = false;
};

// read_manifest: Error(missing_file), Error(schema) or Error(bundle) as Python raises BundleError.
BundleManifest read_manifest(const std::string& bundle_dir);
// content_dir: the version dir the manifest names (its name checked: "" or v1, v2, ...).
std::string content_dir(const std::string& bundle_dir, const BundleManifest& manifest);
// read_skill: skill.json of `name` from the manifest's version, checked against skill_sha256.
SkillManifest read_skill(const std::string& bundle_dir, const std::string& name, const BundleManifest& manifest);
// The manifest's graph hashes of one skill (path -> sha256), to compare with SkillManifest::graphs.
std::map<std::string, std::optional<std::string>> listed_graphs(const BundleManifest& manifest,
                                                                const std::string& skill);

}  // namespace ttdeploy::detail
