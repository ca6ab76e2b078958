// OpenVINO CPU backend: the C++ counterpart of tt_deploy/runtime/openvino_backend.py (fp32 pinned).
#include <openvino/runtime/core.hpp>

#include <string>
#include <vector>

#include "physical_cores.hpp"
#include "tt_deploy/backend.hpp"
#include "tt_deploy/runtime.hpp"

namespace ttdeploy {
namespace {

// A port as openvino_backend._check_io lists it: name, dims ("?" for a dynamic one), dtype.
std::string dtype_name(const ov::element::Type& t) {
  const std::string name = t.get_type_name();
  if (name == "f32") return "float32";
  if (name == "boolean") return "bool";
  if (name == "i64") return "int64";
  return name;
}

std::string describe(const std::string& name, const std::vector<std::int64_t>& dims, const std::string& dtype) {
  std::string s = "('" + name + "', [";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + (dims[i] < 0 ? "'?'" : std::to_string(dims[i]));
  return s + "], '" + dtype + "')";
}

template <typename Ports>
void check_io(const char* kind, const std::vector<TensorSpec>& expected, const Ports& ports, const std::string& path) {
  std::string got, want;
  bool same = ports.size() == expected.size();
  for (std::size_t i = 0; i < ports.size(); ++i) {
    std::vector<std::int64_t> dims;
    for (const auto& d : ports[i].get_partial_shape()) dims.push_back(d.is_static() ? d.get_length() : kSymbolicDim);
    const std::string name = ports[i].get_any_name(), dtype = dtype_name(ports[i].get_element_type());
    got += (i ? ", " : "") + describe(name, dims, dtype);
    if (same) same = name == expected[i].name && dims == expected[i].shape && dtype == expected[i].dtype;
  }
  for (std::size_t i = 0; i < expected.size(); ++i) {
    want += (i ? ", " : "") + describe(expected[i].name, expected[i].shape, expected[i].dtype);
  }
  if (!same) {
    throw Error(ErrorCode::bundle, path + ": graph " + kind + " [" + got + "] do not match the manifest [" + want +
                                       "]; re-export the bundle");
  }
}

class OpenVinoGraph final : public BoundGraph {
 public:
  OpenVinoGraph(ov::CompiledModel compiled, const std::vector<TensorSpec>& inputs)
      : compiled_(std::move(compiled)), request_(compiled_.create_infer_request()) {
    for (const TensorSpec& spec : inputs) {  // bound once: a call writes into these tensors in place
      const ov::Output<const ov::Node> port = compiled_.input(spec.name);
      ov::Tensor tensor(port.get_element_type(), port.get_shape());
      request_.set_tensor(port, tensor);
      inputs_.push_back(std::move(tensor));
    }
    const ov::Output<const ov::Node> out = compiled_.output(0);
    output_ = ov::Tensor(out.get_element_type(), out.get_shape());
    request_.set_tensor(out, output_);
  }

  void* input_data(std::size_t index) override { return inputs_.at(index).data(); }
  const float* output_data() override { return output_.data<const float>(); }

  void run() override {
    try {
      request_.infer();
    } catch (const std::exception& e) {
      throw Error(ErrorCode::backend, std::string("OpenVINO inference failed: ") + e.what());
    }
  }

 private:
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
  std::vector<ov::Tensor> inputs_;
  ov::Tensor output_;
};

class OpenVinoBackend final : public Backend {
 public:
  explicit OpenVinoBackend(int num_threads) : threads_(num_threads > 0 ? num_threads : detail::physical_cores()) {}

  const char* name() const noexcept override { return "openvino"; }

  std::unique_ptr<BoundGraph> compile(const std::string& onnx, const std::string& path,
                                      const std::vector<TensorSpec>& inputs,
                                      const std::vector<TensorSpec>& outputs) override {
    std::shared_ptr<ov::Model> model;
    ov::CompiledModel compiled;
    try {
      model = core_.read_model(onnx, ov::Tensor());
      // f32 pinned: on CPUs with AVX-512 bf16 / AMX, OpenVINO would otherwise compute in bf16 silently
      compiled = core_.compile_model(model, "CPU", ov::hint::inference_precision(ov::element::f32),
                                     ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY),
                                     ov::inference_num_threads(threads_));
    } catch (const std::exception& e) {
      throw Error(ErrorCode::bundle, path + " does not compile with OpenVINO (" + e.what() + "); re-export the bundle");
    }
    const ov::element::Type actual = compiled.get_property(ov::hint::inference_precision);
    if (actual != ov::element::f32) {
      throw Error(ErrorCode::bundle, path + ": OpenVINO compiled it at " + actual.get_type_name() + ", not f32; refusing");
    }
    check_io("inputs", inputs, model->inputs(), path);
    check_io("outputs", outputs, model->outputs(), path);
    return std::make_unique<OpenVinoGraph>(std::move(compiled), inputs);
  }

 private:
  ov::Core core_;
  int threads_;
};

}  // namespace

std::unique_ptr<Backend> make_openvino_backend(int num_threads) {
  try {
    return std::make_unique<OpenVinoBackend>(num_threads);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::backend, std::string("OpenVINO failed to start: ") + e.what());
  }
}

}  // namespace ttdeploy
