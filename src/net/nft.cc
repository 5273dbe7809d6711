#include "net/nft.h"

#include <nftables/libnftables.h>

#include <memory>

namespace isola {

namespace {

struct CtxDeleter {
  void operator()(nft_ctx* c) const { nft_ctx_free(c); }
};
using Ctx = std::unique_ptr<nft_ctx, CtxDeleter>;

Result<Ctx> new_ctx() {
  Ctx ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) return fail(make_error("nftables", "", "libnftables could not make a context"));
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  return ctx;
}

Result<std::string> run(nft_ctx* ctx, const std::string& commands, const std::string& what) {
  if (nft_run_cmd_from_buffer(ctx, commands.c_str()) != 0) {
    std::string err = nft_ctx_get_error_buffer(ctx);
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return fail(make_error("nftables", what, err.empty() ? "the rules were refused" : err));
  }
  return std::string(nft_ctx_get_output_buffer(ctx));
}

}  // namespace

Result<void> nft_run(const std::string& commands, const std::string& what) {
  Ctx ctx = TRY(new_ctx());
  TRYV(run(ctx.get(), commands, what));
  return {};
}

Result<void> nft_delete_table(const std::string& table) {
  // nft 1.0.6 has no "destroy": adding first makes the delete always apply.
  return nft_run("add table " + table + "\ndelete table " + table + "\n", table);
}

Result<std::string> nft_list_table(const std::string& table) {
  Ctx ctx = TRY(new_ctx());
  return run(ctx.get(), "list table " + table, table);
}

}  // namespace isola
