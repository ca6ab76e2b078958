// SkillRuntime._load_skill's consistency checks of one skill.json against manifest.json.
#pragma once

#include "manifest.hpp"

namespace ttdeploy::detail {

// Error(bundle) when the skill was exported for another BFM, its task_obs_dim disagrees with its encoder
// graph, its visible_groups with its fused graph's inputs, or its graph hashes with the manifest's.
void check_skill(const BundleManifest& manifest, const SkillManifest& skill);

}  // namespace ttdeploy::detail
