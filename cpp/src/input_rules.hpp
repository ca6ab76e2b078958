// The call path's input rules, resolved once per skill at load: SkillRuntime._feeds / _BoundCall.
//
// Per call: every array the caller gives is checked (known name, not given twice, dtype, element count,
// NaN/inf), task_obs likewise; visible tokens of a group the skill's graph dropped, a mask that shows
// tokens of a group not given, and a hidden prior prompt are refused; then every graph input is written
// into its bound buffer (a left-out group: zeros and mask False; a group given without its mask: mask
// True). Nothing here allocates unless it throws.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "manifest.hpp"
#include "tt_deploy/backend.hpp"
#include "tt_deploy/runtime.hpp"

namespace ttdeploy::detail {

// The manifest's token groups: which name is which group's data or mask, and their sizes.
class TokenLayout {
 public:
  struct Slot {
    std::size_t group;
    bool is_mask;
  };
  explicit TokenLayout(const BundleManifest& manifest);
  std::optional<Slot> find(std::string_view name) const noexcept;
  const std::vector<TokenGroup>& groups() const noexcept { return groups_; }
  std::size_t size() const noexcept { return groups_.size(); }

 private:
  std::vector<TokenGroup> groups_;
};

// Which caller array each group's data and mask came from in the current call (one slot per group).
struct CallScratch {
  explicit CallScratch(std::size_t groups) : data(groups), mask(groups) {}
  std::vector<const float*> data;
  std::vector<const bool*> mask;
};

class SkillInputs {
 public:
  // Error(bundle) when a graph input is not a token group, mask or task_obs of the manifest at batch 1.
  SkillInputs(const TokenLayout& layout, const BundleManifest& manifest, const SkillManifest& skill,
              const std::vector<TensorSpec>& graph_inputs, bool require_prior);

  // Error(input) naming the first rule a call breaks; otherwise every input of `graph` is written.
  void fill(const Input* inputs, std::size_t n_inputs, const float* task_obs, std::size_t task_obs_count,
            BoundGraph& graph, CallScratch& scratch) const;

  std::size_t task_obs_dim() const noexcept { return task_obs_dim_; }

 private:
  enum class Kind { group_data, group_mask, task_obs };
  struct Binding {  // one graph input, in graph order
    Kind kind;
    std::size_t group;  // token group index (group_data / group_mask)
    std::size_t count;  // elements
    std::size_t input;  // graph input index
  };
  void check_arrays(const Input* inputs, std::size_t n_inputs, const float* task_obs, std::size_t task_obs_count,
                    CallScratch& scratch) const;
  void check_visibility(const CallScratch& scratch) const;
  void write(const float* task_obs, BoundGraph& graph, const CallScratch& scratch) const;

  const TokenLayout& layout_;
  std::string skill_, task_obs_name_;
  std::size_t task_obs_dim_;
  std::vector<Binding> bindings_;
  std::vector<bool> takes_;             // per group: the graph keeps its data input
  std::optional<std::size_t> prior_;    // the prior prompt's group, when this skill must be shown it
  bool require_prior_;
  std::vector<std::string> visible_groups_;
};

}  // namespace ttdeploy::detail
