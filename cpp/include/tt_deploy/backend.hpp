// The backend interface: how the runtime compiles one verified graph and runs it from bound buffers.
//
// The runtime does everything backend-independent itself (reading and hashing files, ONNX metadata,
// manifest consistency, input rules, NaN checks); a backend only compiles the bytes it is handed, checks
// the graph's I/O against the manifest's specs and runs it. OpenVINO's CPU plugin is the one backend so
// far (make_openvino_backend); an ONNX Runtime or TensorRT one implements the same two classes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ttdeploy {

// One graph input or output as the manifest lists it (runtime/manifest.py TensorSpec).
struct TensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;  // kSymbolicDim for a named axis ("batch")
  std::string dtype;                // "float32" | "bool"
};
constexpr std::int64_t kSymbolicDim = -1;

// One compiled graph whose inputs and output are bound, once, to buffers it owns: a call writes the
// inputs in place, calls run() and reads the output; nothing is rebound or allocated by the runtime.
class BoundGraph {
 public:
  virtual ~BoundGraph() = default;
  // Input `index` in the graph's input order (GraphSpec.inputs); float32 or 1-byte bool elements.
  virtual void* input_data(std::size_t index) = 0;
  virtual const float* output_data() = 0;  // the single output (actions), valid after run()
  virtual void run() = 0;                  // throws Error(backend) when the library fails
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const noexcept = 0;
  // `onnx`: the graph's bytes, already checked against the manifest's sha256 (the bytes hashed are the
  // bytes compiled). Throws Error(bundle) when it does not compile at fp32 or its inputs/outputs are
  // not `inputs`/`outputs`.
  virtual std::unique_ptr<BoundGraph> compile(const std::string& onnx, const std::string& path,
                                              const std::vector<TensorSpec>& inputs,
                                              const std::vector<TensorSpec>& outputs) = 0;
};

// OpenVINO CPU plugin pinned to fp32 (INFERENCE_PRECISION_HINT f32, as tt_deploy's OpenVinoSession),
// latency hint, `num_threads` inference threads (0 = physical cores).
std::unique_ptr<Backend> make_openvino_backend(int num_threads);

}  // namespace ttdeploy
