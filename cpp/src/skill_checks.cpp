#include "skill_checks.hpp"

#include <set>

namespace ttdeploy::detail {
namespace {

std::string python_list(const std::set<std::string>& names) {
  std::string s = "[";
  for (const auto& n : names) s += (s.size() > 1 ? ", '" : "'") + n + "'";
  return s + "]";
}

[[noreturn]] void fail(const std::string& message) { throw Error(ErrorCode::bundle, message); }

}  // namespace

void check_skill(const BundleManifest& manifest, const SkillManifest& skill) {
  const std::string& name = skill.name;
  const std::string who = "skill '" + name + "'";
  if (skill.bfm_sha256 != manifest.bfm_sha256) {
    fail(who + " was exported for another BFM; re-export it into this bundle");
  }
  const GraphSpec& encoder = manifest.graph("encoder", name, false);
  std::set<std::int64_t> widths;
  for (const TensorSpec& t : encoder.inputs) {
    if (t.name == manifest.task_obs_name) widths.insert(t.shape.empty() ? kSymbolicDim : t.shape.back());
  }
  const bool width_ok = widths.size() == 1 && *widths.begin() == static_cast<std::int64_t>(skill.task_obs_dim);
  if (!width_ok || skill.encoder_obs_dim != skill.task_obs_dim) {
    std::string taken;
    for (auto w : widths) taken += (taken.empty() ? "" : ", ") + std::to_string(w);
    fail(who + ": skill.json says task_obs_dim " + std::to_string(skill.task_obs_dim) + " (encoder obs_dim " +
         std::to_string(skill.encoder_obs_dim) + ") but its encoder graph takes [" + taken +
         "]; skill.json was edited - re-export the skill");
  }
  const GraphSpec& fused = manifest.graph("fused", name, false);
  std::set<std::string> masks, takes, visible(skill.visible_groups.begin(), skill.visible_groups.end());
  for (const TokenGroup& g : manifest.token_groups) {
    if (!g.mask_name.empty()) masks.insert(g.mask_name);
  }
  for (const TensorSpec& t : fused.inputs) {
    if (t.name != manifest.task_obs_name && masks.count(t.name) == 0) takes.insert(t.name);
  }
  if (takes != visible) {
    fail(who + ": skill.json says the visible token groups are " + python_list(visible) +
         " but its fused graph takes " + python_list(takes) +
         "; skill.json or manifest.json was edited - re-export the skill");
  }
  if (skill.graphs != listed_graphs(manifest, name)) {
    fail(who + ": graph hashes in skill.json and manifest.json disagree; a file was replaced or a manifest edited - "
               "re-export the skill");
  }
}

}  // namespace ttdeploy::detail
