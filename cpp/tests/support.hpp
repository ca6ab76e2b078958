// Helpers shared by the runtime tests: call inputs built from the runtime's own layout, file edits,
// and the OpenVINO backend with hooks around each graph run.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tt_deploy/backend.hpp"
#include "tt_deploy/runtime.hpp"

namespace tt_test {

// One sample's arrays for one skill: every group the skill's graph takes (random data, masks with
// some tokens visible), and random task_obs of the skill's width. Owns its arrays, so it copies safely.
struct Call {
  struct Array {
    std::string name;
    ttdeploy::DType dtype;
    std::vector<float> floats;         // float32 data
    std::vector<unsigned char> bytes;  // bool masks, 1 byte each as numpy stores them
  };
  std::vector<Array> arrays;
  std::vector<float> task_obs;

  // The call's Input views (valid while `arrays` is unchanged).
  std::vector<ttdeploy::Input> inputs() const;
  std::vector<float>& data(const std::string& name);  // the float array given under `name`
  void remove(const std::string& name);              // leave `name` out of the call
  void add_floats(const std::string& name, std::vector<float> values);
  void add_mask(const std::string& name, std::vector<unsigned char> values);
};
Call make_call(const ttdeploy::Runtime& rt, const std::string& skill, unsigned seed);
const ttdeploy::TokenGroup& group(const ttdeploy::Runtime& rt, const std::string& name);

// Runs the active skill; returns the actions.
std::vector<float> act(ttdeploy::Runtime& rt, const Call& call);

std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& text);
// The current version dir of a bundle (manifest `content`).
std::string content_dir(const std::string& bundle);

// OpenVINO (1 thread) with hooks called just before and after every graph run.
struct RunHooks {
  std::function<void()> before_run = [] {};
  std::function<void()> after_run = [] {};
};
std::unique_ptr<ttdeploy::Backend> hooked_openvino(std::shared_ptr<RunHooks> hooks);

}  // namespace tt_test
