#pragma once

namespace ttdeploy::detail {

// Physical cores this process may run on, SMT siblings counted once, >= 1 (session.physical_cores).
int physical_cores();

}  // namespace ttdeploy::detail
