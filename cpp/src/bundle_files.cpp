#include "bundle_files.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "sha256.hpp"
#include "tt_deploy/runtime.hpp"

namespace ttdeploy::detail {

std::optional<std::string> read_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return data;
}

std::string read_verified(const std::string& path, const std::string& sha256) {
  auto data = read_file(path);
  if (!data) {
    throw Error(ErrorCode::missing_file,
                "bundle file missing: " + path + "; re-export the skill with `ttdeploy export`");
  }
  std::string actual = sha256_hex(*data);
  if (actual != sha256) {
    throw Error(ErrorCode::hash_mismatch, path + ": sha256 " + actual.substr(0, 12) + "... does not match the manifest (" +
                                              sha256.substr(0, 12) + "...); the file is truncated or modified - "
                                              "re-export the bundle");
  }
  return std::move(*data);
}

std::string join_path(const std::string& dir, const std::string& relative) {
  return (std::filesystem::path(dir) / relative).string();  // like Python's Path / (no normalising)
}

}  // namespace ttdeploy::detail
