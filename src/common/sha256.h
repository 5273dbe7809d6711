// Incremental SHA-256 (OpenSSL's EVP), used to verify every blob against its
// content digest.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"

struct evp_md_ctx_st;

namespace isola {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // The lowercase hex digest; the hasher must not be used afterwards.
  std::string hex_digest();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

std::string sha256_hex(std::string_view data);
// Hashes a file's content; also returns its size through `size` if given.
Result<std::string> sha256_file(const std::string& path, uint64_t* size = nullptr);

}  // namespace isola
