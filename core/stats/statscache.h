#pragma once
// On-disk cache of weight statistics, one HDF5 file per model in the user's cache directory (never beside
// the model, which may be read-only). Entries are keyed by every model file's path, size and modification
// time. The cache is never trusted: a file is opened with libhdf5 only after its size and SHA-256 match a
// small side file written after it (libhdf5 can crash on malformed files), every array is bounds-checked
// on load, and anything stale, foreign or inconsistent is ignored and rebuilt.

#include "core/stats/stats.h"

#include <filesystem>
#include <map>
#include <string>

namespace qs {

class StatsCache {
public:
    // dir empty: $QUANTSCOPE_CACHE_DIR, else <generic cache location>/quantscope/stats.
    StatsCache(const Model& model, std::filesystem::path dir = {});

    static std::filesystem::path defaultDirectory();
    const std::filesystem::path& file() const { return m_file; }

    // Reads the cache if it is intact and belongs to the model's current files; returns the entry count.
    size_t load();
    // A cached entry for the tensor when name, dtype and shape match, else nullptr.
    const TensorStats* find(const TensorInfo& tensor) const;
    void insert(const TensorStats& stats);
    // Writes every entry atomically; false (and no cache) when the directory is not writable.
    bool save();

private:
    std::filesystem::path m_file;
    std::string m_key;
    std::map<std::string, TensorStats, std::less<>> m_entries;
};

} // namespace qs
