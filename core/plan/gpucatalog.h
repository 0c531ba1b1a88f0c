#pragma once
// The GPU catalogue: memory size and bandwidth of the devices users plan for. The built-in list ships as
// resources/gpus.json (installed to share/quantscope/gpus.json); users add or correct devices in their own
// file, so a new card never needs a new release. Core cannot use Qt resources (no Qt Gui), hence plain files.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

enum class GpuKind : uint8_t { Datacenter, Workstation, Consumer, Unified };
const char* gpuKindName(GpuKind kind); // "datacenter", "workstation", "consumer", "unified"

struct GpuSpec {
    std::string id;   // stable key, e.g. "rtx-4090"
    std::string name; // display name, e.g. "NVIDIA GeForce RTX 4090 24GB"
    std::string vendor;
    GpuKind kind = GpuKind::Consumer;
    uint64_t memoryBytes = 0; // nominal memory (24 GB card = 24 GiB)
    // Total memory as the driver reports it (nvidia-smi memory.total, cudaMemGetInfo total): what a
    // process can use before the CUDA context takes its share. 0: not recorded, the nominal size is used.
    uint64_t driverMemoryBytes = 0;
    // Where the usable figure comes from ("nvidia-smi on an H200 (measured)", "nominal", ...).
    std::string memorySource;
    double bandwidthGBps = 0; // peak memory bandwidth, 1e9 bytes per second
    // Share of memoryBytes a GPU program may allocate: 1 for discrete cards; Apple unified memory is
    // capped by macOS (recommendedMaxWorkingSetSize, about 3/4 of RAM by default).
    double usableFraction = 1.0;
    // GPU architecture ("hopper", "ada", "ampere", ...), for per-architecture runtime defaults.
    std::string architecture;
    std::vector<std::string> aliases;

    // driverMemoryBytes when recorded, else memoryBytes; times usableFraction.
    uint64_t usableBytes() const;
};

class GpuCatalog {
public:
    GpuCatalog() = default;
    explicit GpuCatalog(std::vector<GpuSpec> gpus) : m_gpus(std::move(gpus)) {}

    const std::vector<GpuSpec>& gpus() const { return m_gpus; }
    // By id, alias or display name, case-insensitive; also accepts a unique substring of the name
    // ("4090"). nullptr when unknown or ambiguous.
    const GpuSpec* find(std::string_view key) const;
    // Adds a device, replacing one with the same id (how a user file corrects a built-in entry).
    void addOrReplace(GpuSpec gpu);

    // Parses a catalogue file ({"version": 1, "gpus": [...]}, see docs/memory-model.md). Throws
    // qs::FormatError naming the entry and field on bad input.
    static GpuCatalog fromJson(const std::string& json, const std::string& fileName = {});
    static GpuCatalog fromFile(const std::filesystem::path& path);

    // The built-in catalogue merged with the user's file. Base: $QUANTSCOPE_GPUS when set, else the first
    // of <install prefix>/share/quantscope/gpus.json, <exe dir>/../share/quantscope/gpus.json and the
    // source tree's resources/gpus.json. Then userCatalogPath() (when it exists) adds or replaces entries.
    // Throws qs::Error(Io) when no base catalogue exists.
    static GpuCatalog load();
    // The files this catalogue was read from, in order (for diagnostics and the `gpus` command).
    const std::vector<std::filesystem::path>& sources() const { return m_sources; }
    // <generic config dir>/quantscope/gpus.json, e.g. ~/.config/quantscope/gpus.json.
    static std::filesystem::path userCatalogPath();

private:
    std::vector<GpuSpec> m_gpus;
    std::vector<std::filesystem::path> m_sources;
};

} // namespace qs
