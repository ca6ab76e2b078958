// SHA-256 (OpenSSL EVP): the identity of every bundle file, as tt_deploy.hashing computes it.
#pragma once

#include <string>
#include <string_view>

namespace ttdeploy::detail {

// Lowercase hex digest, like hashlib.sha256(data).hexdigest().
std::string sha256_hex(std::string_view data);

}  // namespace ttdeploy::detail
