#include "tt_deploy/runtime.hpp"

namespace ttdeploy {

Error::Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}

const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::ok: return "ok";
    case ErrorCode::bundle: return "bundle";
    case ErrorCode::missing_file: return "missing_file";
    case ErrorCode::hash_mismatch: return "hash_mismatch";
    case ErrorCode::schema: return "schema";
    case ErrorCode::unknown_name: return "unknown_name";
    case ErrorCode::input: return "input";
    case ErrorCode::nonfinite_actions: return "nonfinite_actions";
    case ErrorCode::concurrent_use: return "concurrent_use";
    case ErrorCode::closed: return "closed";
    case ErrorCode::backend: return "backend";
  }
  return "unknown";
}

}  // namespace ttdeploy
