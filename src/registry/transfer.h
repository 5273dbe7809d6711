// What pull and push tell the user while they work: one event per change of
// a blob's state, and byte counts while it moves. Called from the transfer
// threads; the receiver serializes its output.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace isola {

enum class BlobPhase { waiting, exists, transferring, verifying, done, extracting, stored };

struct TransferEvent {
  std::string id;  // the blob's short digest (12 hex)
  BlobPhase phase = BlobPhase::waiting;
  uint64_t done = 0;   // bytes moved so far
  uint64_t total = 0;  // bytes expected (from the descriptor)
};

using TransferObserver = std::function<void(const TransferEvent&)>;

}  // namespace isola
