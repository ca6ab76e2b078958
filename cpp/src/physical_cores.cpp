#include "physical_cores.hpp"

#include <sched.h>

#include <fstream>
#include <set>
#include <string>
#include <utility>

namespace ttdeploy::detail {

int physical_cores() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0) return 1;
  std::set<std::pair<std::string, std::string>> cores;  // (package, core), or ("cpu", n) without sysfs
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &cpus)) continue;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    std::ifstream package(base + "physical_package_id"), core(base + "core_id");
    std::string p, k;
    if (package >> p && core >> k) cores.emplace(p, k);
    else cores.emplace("cpu", std::to_string(c));
  }
  return cores.empty() ? 1 : static_cast<int>(cores.size());
}

}  // namespace ttdeploy::detail
