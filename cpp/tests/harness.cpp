#include "harness.hpp"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

namespace tt_test {
namespace {

std::map<std::string, void (*)()>& registry() {
  static std::map<std::string, void (*)()> tests;
  return tests;
}

// ctest's include file: one add_test per registered test, skips reported as skips.
int write_ctest_file(const char* path, const char* exe) {
  std::ofstream out(path);
  for (const auto& [name, fn] : registry()) {
    (void)fn;
    out << "add_test([==[" << name << "]==] [==[" << exe << "]==] [==[" << name << "]==])\n"
        << "set_tests_properties([==[" << name << "]==] PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)\n";
  }
  return out ? 0 : 1;
}

}  // namespace

Register::Register(const char* name, void (*fn)()) { registry()[name] = fn; }

std::string bundle_or_skip() {
  const char* bundle = std::getenv("TT_DEPLOY_TEST_BUNDLE");
  if (bundle == nullptr || *bundle == '\0') {
    throw Skip("TT_DEPLOY_TEST_BUNDLE is not set (export a bundle: ttdeploy export --skill reach --bundle DIR)");
  }
  return bundle;
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "tt_deploy_cpp_test.XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw Failure("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

BundleCopy::BundleCopy(const std::string& bundle) : path(dir.path() + "/bundle") {
  std::filesystem::copy(bundle, path, std::filesystem::copy_options::recursive);
}

std::string expect_error(ttdeploy::ErrorCode code, const std::function<void()>& body, const char* where) {
  try {
    body();
  } catch (const ttdeploy::Error& e) {
    if (e.code() != code) {
      throw Failure(std::string(where) + ": expected error " + ttdeploy::error_code_name(code) + ", got " +
                    ttdeploy::error_code_name(e.code()) + ": " + e.what());
    }
    return e.what();
  }
  throw Failure(std::string(where) + ": expected error " + ttdeploy::error_code_name(code) + ", nothing was thrown");
}

}  // namespace tt_test

int main(int argc, char** argv) {
  using tt_test::registry;
  if (argc == 4 && std::string(argv[1]) == "--ctest-file") return tt_test::write_ctest_file(argv[2], argv[3]);
  if (argc == 2 && std::string(argv[1]) == "--list") {
    for (const auto& [name, fn] : registry()) std::cout << name << "\n";
    return 0;
  }
  if (argc != 2 || registry().count(argv[1]) == 0) {
    std::cerr << "usage: " << argv[0] << " --list | --ctest-file FILE EXE | TEST_NAME\n";
    return 2;
  }
  try {
    registry()[argv[1]]();
  } catch (const tt_test::Skip& s) {
    std::cout << "SKIP " << argv[1] << ": " << s.what() << "\n";
    return 77;
  } catch (const std::exception& e) {
    std::cout << "FAIL " << argv[1] << ": " << e.what() << "\n";
    return 1;
  }
  std::cout << "PASS " << argv[1] << "\n";
  return 0;
}
