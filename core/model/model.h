#pragma once
// One model abstraction over every format: tensors (name, shape, dtype, bytes, where they live) and
// architecture metadata. Data stays in memory-mapped files and is decoded to float on demand.

#include "core/model/dtype.h"
#include "core/model/mappedfile.h"
#include "core/model/tensorrole.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace qs {

class JobControl;

enum class ModelFormat : uint8_t { Safetensors, Gguf, Hdf5, Keras, ConfigOnly };
const char* modelFormatName(ModelFormat format); // "safetensors", "gguf", "hdf5", "keras", "config"

// A quantized weight a checkpoint stores as several tensors (compressed-tensors weight_packed /
// weight_scale / weight_zero_point / weight_shape, GPTQ qweight / qzeros / scales / g_idx, FP8 weight +
// weight_scale), shown as one logical tensor.
struct PackedWeight {
    std::string scheme;             // format name of core/quant/format.h: "INT4-g128-asym", "FP8-E4M3-ch"
    std::string layout;             // "compressed-tensors pack-quantized", "GPTQ", ...
    uint64_t storedBytes = 0;       // every part together
    std::vector<std::string> parts; // the stored tensors it is made of
    // Decodes values [first, first + count) of the logical weight (row-major) to float.
    std::function<void(uint64_t first, uint64_t count, float* out)> decode;
};

// Tensor names longer than this are refused at parse time by every loader (real names are below 128 bytes;
// ggml's own limit is 63). Bounds the work of name matching (rules, filters) and of every message.
inline constexpr size_t kMaxTensorNameBytes = 1024;
// Tensors in one file, refused beyond this by every loader before it allocates per-tensor records. Real
// checkpoints hold at most ~10^5 (Kimi K2 in FP8 with one scale per expert matrix: ~140,000).
inline constexpr uint64_t kMaxTensorCount = uint64_t{1} << 20;

struct TensorInfo {
    std::string name;
    // Outermost dimension first (numpy / safetensors order). GGUF's ne[] is reversed into this order,
    // so a 2-D weight is {rows = output channels, columns = input features} in every format.
    std::vector<uint64_t> shape;
    DType dtype = DType::F32;
    uint64_t bytes = 0;      // stored size
    uint32_t fileIndex = 0;  // index into Model::files()
    uint64_t offset = 0;     // absolute byte offset of the data in that file
    RoleInfo role;
    // Set when dtype == DType::Packed: offset / bytes are then those of the main stored part (qweight,
    // weight_packed, the FP8 weight) and Model::decode goes through it.
    std::shared_ptr<const PackedWeight> packed;

    // The matrix a runtime quantizes, when it is not rows() x columns() (core/model/matrixview.h: Keras and
    // Paddle [..., in, out] weights, flattened convolution kernels); set by Model::finalize(), 0 = as stored.
    uint64_t viewRows = 0, viewColumns = 0;

    uint64_t elements() const;                 // product of shape (1 for a scalar)
    uint64_t rows() const;                     // product of all but the last dimension
    uint64_t columns() const;                  // last dimension (1 for a scalar)
    // What a plan counts and a quantizer groups along: one row per output channel (rows() x columns()
    // unless viewRows / viewColumns are set).
    uint64_t matrixRows() const { return viewColumns ? viewRows : rows(); }
    uint64_t matrixColumns() const { return viewColumns ? viewColumns : columns(); }
};

// Architecture metadata from config.json or GGUF keys. Zero / empty means unknown.
struct ModelConfig {
    std::string architecture;     // "llama", "qwen2", ... (HF model_type or general.architecture)
    uint32_t layers = 0;
    uint32_t hiddenSize = 0;
    uint32_t intermediateSize = 0;
    uint32_t heads = 0;
    uint32_t kvHeads = 0;
    uint32_t headDim = 0;         // explicit or hiddenSize / heads
    uint32_t vocabSize = 0;
    uint64_t contextLength = 0;
    bool tiedEmbeddings = false;
    uint32_t slidingWindow = 0;   // 0: none
    // Layers that use the sliding window (empty with slidingWindow > 0 means all layers).
    std::vector<uint32_t> slidingWindowLayers;
    uint32_t experts = 0;         // MoE experts per layer, 0 when dense
    uint32_t expertsUsed = 0;
};

// Metadata values as found in the file (GGUF KV pairs, safetensors __metadata__, HDF5 attributes).
struct MetaValue;
using MetaArray = std::vector<MetaValue>; // strings, nested arrays, mixed items

// An array of numbers or bools kept at the width the file stores them (GGUF arrays are typed): a one-byte
// item costs one byte in memory, as in the file, where a MetaArray item costs sizeof(MetaValue) = 40.
// Items read back as the scalars a MetaArray would hold (uint64_t, int64_t, double, bool).
struct MetaNumbers {
    enum class Type : uint8_t { U8, I8, U16, I16, U32, I32, U64, I64, F32, F64, Bool };
    Type type = Type::U8;
    std::vector<std::byte> bytes; // the items, host byte order

    static size_t width(Type type);
    size_t size() const { return bytes.size() / width(type); }
    MetaValue at(size_t i) const; // i < size()
};

struct MetaValue {
    std::variant<int64_t, uint64_t, double, bool, std::string, MetaArray, MetaNumbers> value;
    std::string toString(size_t maxArrayItems = 8) const;

    // Arrays of either kind: whether this is one, its item count, and item i (i < arraySize()) by value.
    bool isArray() const;
    size_t arraySize() const;
    MetaValue item(size_t i) const;
};

class Model {
public:
    Model(ModelFormat format, std::filesystem::path path);

    ModelFormat format() const { return m_format; }
    const std::filesystem::path& path() const { return m_path; } // what the user opened
    const std::vector<std::shared_ptr<MappedFile>>& files() const { return m_files; }
    const std::vector<TensorInfo>& tensors() const { return m_tensors; }
    const ModelConfig& config() const { return m_config; }
    const std::map<std::string, MetaValue>& metadata() const { return m_metadata; }
    // What the loader accepted but the user should know: a Keras layer whose group is missing, a dataset
    // it could not load, a config.json it could not use. Shown by `inspect` and the GUI's model summary.
    const std::vector<std::string>& warnings() const { return m_warnings; }
    void addWarning(std::string message); // keeps the first 1000, then notes that there were more

    const TensorInfo* find(std::string_view name) const;
    uint64_t parameterCount() const; // sum of elements over tensors
    uint64_t totalBytes() const;     // sum of tensor bytes (every part of packed weights)
    double bitsPerWeight() const;    // 8 * totalBytes / parameterCount

    // Raw stored bytes of a tensor (a view into the map; valid while the Model lives).
    std::span<const std::byte> rawData(const TensorInfo& tensor) const;
    // Decodes values [first, first + count) of a tensor to float. first and count must be multiples of
    // the dtype's block size (or reach the end). Throws qs::Error(Unsupported) for undecodable types.
    void decode(const TensorInfo& tensor, uint64_t first, uint64_t count, float* out) const;
    // Decodes rows [firstRow, firstRow + rowCount) of a tensor viewed as rows() x columns().
    void decodeRows(const TensorInfo& tensor, uint64_t firstRow, uint64_t rowCount, float* out) const;

    // The input shard a file's tensors belong to when writing a checkpoint: the file itself, except for the
    // files of an overlay model (core/model/overlay.h) that hold replacement data for another file's tensors.
    // Such files come after every shard.
    uint32_t fileShard(uint32_t fileIndex) const;
    void setFileShard(uint32_t fileIndex, uint32_t shard);

    // Builders, used by the loaders.
    uint32_t addFile(std::shared_ptr<MappedFile> file);
    void addTensor(TensorInfo tensor); // classifies the role from the name
    ModelConfig& mutableConfig() { return m_config; }
    std::map<std::string, MetaValue>& mutableMetadata() { return m_metadata; }
    void finalize(); // builds the name index and each tensor's matrix view; call once after all tensors were added

private:
    ModelFormat m_format;
    std::filesystem::path m_path;
    std::vector<std::shared_ptr<MappedFile>> m_files;
    std::map<uint32_t, uint32_t> m_fileShard; // exceptions to fileShard(i) == i
    std::vector<TensorInfo> m_tensors;
    std::map<std::string, size_t, std::less<>> m_index;
    ModelConfig m_config;
    std::map<std::string, MetaValue> m_metadata;
    std::vector<std::string> m_warnings;
};

// Opens a model from a file or folder, detecting the format:
// - *.safetensors, or a folder / model.safetensors.index.json (sharded); config.json beside it is read;
// - *.gguf (by magic);
// - *.h5 / *.hdf5 / *.keras-h5 (by HDF5 signature), parsed in a sandboxed helper process;
// - config.json alone: a ConfigOnly model with architecture metadata and no tensors.
// Throws qs::FormatError / qs::Error on bad input, qs::CancelledError when cancelled.
std::shared_ptr<Model> openModel(const std::filesystem::path& path, JobControl* job = nullptr);

// Hugging Face config.json, read by the one reader every use goes through (the safetensors loader,
// ConfigOnly models, tensor shapes derived from a config alone): the same keys, defaults and limits.
struct HfConfig {
    ModelConfig config;
    std::string modelType; // the text model's model_type ("gemma3_text" in a Gemma 3 checkpoint)
    std::optional<bool> attentionBias, mlpBias;
    std::string dtype; // torch_dtype (or dtype): "bfloat16", "float16", "float32", or empty
};
HfConfig parseHfConfig(std::string_view text, const std::string& fileName);
// The file (a regular file of at most kMaxConfigJsonBytes) through parseHfConfig.
ModelConfig readHfConfig(const std::filesystem::path& configJson);

} // namespace qs
