// nftables through libnftables: commands in nft's own language, run as one
// atomic batch in the caller's network namespace. isola keeps each thing it
// adds in a table of its own, so removing it is deleting that table.
#pragma once

#include <string>

#include "common/error.h"

namespace isola {

// Runs `commands` (several, separated by newlines or ';') atomically; the
// error carries nft's own message.
Result<void> nft_run(const std::string& commands, const std::string& what);

// Deletes `table` ("ip isola-...") if it exists; never an error for a
// missing table.
Result<void> nft_delete_table(const std::string& table);

// The current rule set as nft prints it (for `network inspect` and tests).
Result<std::string> nft_list_table(const std::string& table);

}  // namespace isola
