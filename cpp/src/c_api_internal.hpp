// For tests: a C handle around a Runtime built in C++ (e.g. on an instrumented backend).
#pragma once

#include "tt_deploy/runtime.hpp"
#include "tt_deploy/tt_deploy.h"

namespace ttdeploy::detail {

tt_deploy_runtime* wrap_runtime(Runtime runtime);  // free with tt_deploy_destroy

}  // namespace ttdeploy::detail
