#pragma once
// Reading files that may be hostile: a FIFO, a device (/dev/zero behind a symlink) or a folder given where a
// file is expected must be refused before a single byte is read, and nothing is read past a cap. Every
// reader of a whole file (plans, rules, config.json, GPU catalogues, sensitivity tables) goes through here;
// MappedFile applies the same open rule to the model files it maps.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace qs {

// Limits shared by every reader of that kind of file (docs/reliability.md lists them and why).
inline constexpr uint64_t kMaxConfigJsonBytes = 16u << 20; // config.json: real ones are a few KiB
inline constexpr uint64_t kMaxPlanFileBytes = 16u << 20;   // a 70B plan with every tensor named: ~100 KiB
inline constexpr uint64_t kMaxRulesFileBytes = 1u << 20;
inline constexpr uint64_t kMaxSmallJsonBytes = 64u << 20; // GPU catalogues, sensitivity tables

// Opens `path` read-only without blocking (O_NONBLOCK: opening a FIFO would otherwise wait for a writer)
// and checks, on the opened descriptor, that it is a regular file. Returns the descriptor (the caller
// closes it) and its size. Throws qs::FormatError(Io) naming the file: "not a regular file (a FIFO)".
int openRegularFile(const std::filesystem::path& path, uint64_t* size);

// The whole file, at most maxBytes (a larger file is refused before reading: FormatError(BadValue) naming
// `what` and the limit). Reads exactly the size fstat reported, never more.
std::string readRegularFile(const std::filesystem::path& path, uint64_t maxBytes, const std::string& what = "file");

// For caches, whose absence or damage only means "compute again": the file's contents, or nullopt when it is
// missing, not a regular file (a FIFO planted at the path must not block), larger than maxBytes or unreadable.
std::optional<std::string> readCacheFile(const std::filesystem::path& path, uint64_t maxBytes);

} // namespace qs
