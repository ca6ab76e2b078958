// Reading bundle files: whole-file bytes, and bytes refused unless they hash to the recorded sha256
// (session.read_verified: the bytes hashed are the bytes used).
#pragma once

#include <optional>
#include <string>

namespace ttdeploy::detail {

// The file's bytes, or nullopt when it is not a regular file or cannot be read.
std::optional<std::string> read_file(const std::string& path);

// session.read_verified: Error(missing_file) when absent, Error(hash_mismatch) when its sha256 differs.
std::string read_verified(const std::string& path, const std::string& sha256);

std::string join_path(const std::string& dir, const std::string& relative);

}  // namespace ttdeploy::detail
