// A small test registry for ctest: each TT_TEST is one ctest test (the executable lists them at build
// time, see CMakeLists.txt), run as `<exe> <suite.name>`; exit 0 pass, 1 fail, 77 skip.
#pragma once

#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>

#include "tt_deploy/runtime.hpp"

namespace tt_test {

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct Skip : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Register {
  Register(const char* name, void (*fn)());
};

// The bundle the runtime tests read (TT_DEPLOY_TEST_BUNDLE; tests/cpp/test_cpp_runtime.py exports one);
// throws Skip when unset.
std::string bundle_or_skip();
// A fresh directory, removed with everything in it when this goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A writable copy of a bundle, to edit (removed at scope exit).
struct BundleCopy {
  explicit BundleCopy(const std::string& bundle);
  TempDir dir;
  std::string path;
};

// Runs `body` and requires it to throw ttdeploy::Error with `code`; returns its message.
std::string expect_error(ttdeploy::ErrorCode code, const std::function<void()>& body, const char* where);

}  // namespace tt_test

#define TT_TEST(suite, name)                                                 \
  static void tt_test_##suite##_##name();                                    \
  static const tt_test::Register tt_test_register_##suite##_##name(          \
      #suite "." #name, &tt_test_##suite##_##name);                          \
  static void tt_test_##suite##_##name()

#define TT_WHERE_(line) __FILE__ ":" #line
#define TT_WHERE(line) TT_WHERE_(line)

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) throw tt_test::Failure(TT_WHERE(__LINE__) ": CHECK(" #cond ") failed"); \
  } while (0)

#define CHECK_EQ(a, b)                                                       \
  do {                                                                       \
    const auto& tt_a = (a);                                                  \
    const auto& tt_b = (b);                                                  \
    if (!(tt_a == tt_b)) {                                                   \
      std::ostringstream tt_msg;                                             \
      tt_msg << TT_WHERE(__LINE__) ": " #a " == " #b " failed: " << tt_a << " vs " << tt_b; \
      throw tt_test::Failure(tt_msg.str());                                  \
    }                                                                        \
  } while (0)

#define CHECK_ERROR(code, ...) tt_test::expect_error(code, [&] { __VA_ARGS__; }, TT_WHERE(__LINE__))
