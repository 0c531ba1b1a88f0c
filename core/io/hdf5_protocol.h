#pragma once
// The wire format between quantscope-h5probe (the sandboxed libhdf5 helper) and qs::loadHdf5, and its
// parser. The probe's output is as untrusted as the file it read: a malicious file can steer libhdf5 into
// printing anything, so the parser bounds every count and string and the loader re-checks every offset
// against the real file size.
//
// Format (version 1): one JSON object per line on stdout, each with a "t" (type) member:
//   {"t":"probe","v":1,"lib":"1.10.8"}                                   first line
//   {"t":"group","path":"/model_weights"}
//   {"t":"attr","obj":"/model_weights","name":"layer_names","kind":"str"|"int"|"float","values":[...]}
//   {"t":"dataset","path":"/a/b","shape":[2,3],"type":"f32","order":"le"|"be","layout":"contiguous"|
//        "compact"|"chunked"|"virtual","filters":["deflate",...],
//        "storage":"direct"|"copy"|"none","offset":N,"bytes":N,"reason":"..."}
//     direct: the bytes lie little-endian at offset in the HDF5 file itself;
//     copy:   the probe decoded them (decompressed / byte-swapped) into the copy file, at offset;
//     none:   not available, reason says why (external storage, virtual, unavailable filter, ...).
//     type: f16 bf16 f32 f64 i8 i16 i32 i64 u8 u16 u32 u64 bool, or "other" (not numeric).
//   {"t":"skip","path":"/x","reason":"..."}                                links the probe did not follow
//   {"t":"warning","message":"..."}
//   {"t":"error","code":"not_hdf5"|"truncated"|"open_failed"|"usage"|"io","message":"..."}
//   {"t":"end","objects":N}                                                last line of a complete walk
// Progress goes to stderr as lines "progress <fraction> <stage>" so stdout stays pure data.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qs {
class MappedFile;
class Model;
} // namespace qs

namespace qs::h5 {

inline constexpr int kProtocolVersion = 1;

// Parser limits: generous for real models, small enough that hostile output cannot exhaust memory.
inline constexpr size_t kMaxOutputBytes = 256u << 20; // whole stdout
inline constexpr size_t kMaxLineBytes = 64u << 20;    // one record (model_config can be large)
inline constexpr size_t kMaxDatasets = 1u << 20;
inline constexpr size_t kMaxAttributes = 1u << 20;
inline constexpr size_t kMaxRank = 32;
inline constexpr size_t kMaxAttrValues = 1u << 20;

// Defined in AddressSanitizer builds (GCC and clang), where the helper gets no address-space limit.
#if defined(__SANITIZE_ADDRESS__)
#define QS_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QS_ASAN_BUILD 1
#endif
#endif

// Limits of the helper process. The parent sets them on the child (hdf5_probe.cpp) and the helper sets
// them on itself too (h5probe/main.cpp), so it is limited however it was started.
inline constexpr uint64_t kProbeMemoryLimitBytes = 2ull << 30; // address space (not in sanitizer builds)
inline constexpr int kProbeTimeLimitSeconds = 30 * 60;         // CPU time, and wall time by alarm()
inline constexpr uint64_t kProbeCopySlackBytes = 1u << 20;     // file size limit: copy limit + this

enum class Storage : uint8_t { Direct, Copy, None };

struct Dataset {
    std::string path;
    std::vector<uint64_t> shape;
    std::string type; // protocol type name, see above
    bool bigEndian = false;
    std::string layout;
    std::vector<std::string> filters;
    Storage storage = Storage::None;
    uint64_t offset = 0;
    uint64_t bytes = 0;
    std::string reason; // why storage is None
};

struct Attribute {
    std::string object; // path of the group that carries it
    std::string name;
    enum class Kind : uint8_t { String, Int, Float } kind = Kind::String;
    std::vector<std::string> strings;
    std::vector<double> numbers;
};

struct ProbeOutput {
    int version = 0;
    std::string library;
    std::vector<std::string> groups;
    std::vector<Attribute> attributes;
    std::vector<Dataset> datasets;
    std::vector<std::string> warnings; // includes skipped links, formatted "<path>: <reason>"
    bool complete = false;             // the end record was seen
    std::optional<std::string> errorCode;
    std::string errorMessage;

    const Attribute* findAttribute(std::string_view object, std::string_view name) const;
};

// Parses the probe's stdout. Never throws on content: malformed lines are skipped and counted in
// `malformedLines`; returns what could be read. The caller decides whether the result is usable
// (complete, no error). Throws nothing but std::bad_alloc.
ProbeOutput parseProbeOutput(std::string_view output, size_t* malformedLines = nullptr);

// Builds the Model from a complete probe description (the part of qs::loadHdf5 after the probe ran):
// Keras or plain layout, every offset checked against `file` (or `copy`, the probe's decoded data, may be
// null). Throws qs::FormatError when the description contradicts the files.
std::shared_ptr<Model> buildModel(const std::filesystem::path& path, const ProbeOutput& probe,
                                  std::shared_ptr<MappedFile> file, std::shared_ptr<MappedFile> copy);

} // namespace qs::h5
