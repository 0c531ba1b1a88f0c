#pragma once
// The model loaders as one table: what each is called, which file names it takes and which files it
// recognises by content. openModel() detects formats from it, and the GUI builds its open-dialog filters
// from it, so a new loader is one row here.

#include "core/model/model.h"

#include <array>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>

namespace qs {

using FileSignature = std::array<char, 8>; // the first bytes of a file, zero-padded

struct LoaderInfo {
    const char* name;                           // for dialogs and messages: "safetensors", "GGUF", ...
    std::span<const std::string_view> suffixes; // file-name endings it takes, most specific first
    // Recognises the format from the first bytes, whatever the file is called; nullptr for formats without
    // a signature, which are taken by name only.
    bool (*sniff)(const FileSignature& signature);
    std::shared_ptr<Model> (*open)(const std::filesystem::path& path, JobControl* job);
};

// In detection order: a signature match wins over a name; among names, the first loader with a matching
// suffix ("x.safetensors.index.json" is safetensors, not a config).
std::span<const LoaderInfo> modelLoaders();

} // namespace qs
