#pragma once
// Where the on-disk caches live and which model a cache entry belongs to. The statistics cache and the
// sensitivity cache share both, so that a model opened as a folder (GUI) and as the file inside it (CLI)
// finds the same cache: the identity is the model's files on disk, never the path as typed.

#include <filesystem>
#include <string>

namespace qs {

class Model;

// $QUANTSCOPE_CACHE_DIR, else <generic cache location>/quantscope/stats; empty when neither is known.
std::filesystem::path cacheDirectory();

struct ModelIdentity {
    // Every file of the model: canonical absolute path, size and modification time, one per line. Empty
    // when a file cannot be stat'ed: then nothing may be cached for the model.
    std::string key;
    // 32 hex digits naming the model's cache files: a hash of the files' canonical paths only, so that a
    // changed file overwrites its stale cache instead of adding a second one.
    std::string fileStem;
};

ModelIdentity modelIdentity(const Model& model);

// dir / (identity.fileStem + suffix), dir empty: cacheDirectory(); empty when no directory is known or the
// model cannot be identified.
std::filesystem::path modelCacheFile(const Model& model, const std::filesystem::path& dir,
                                     const std::string& suffix);

} // namespace qs
