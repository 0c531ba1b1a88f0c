// GGUF reader. Every count and length in the header is checked against the bytes that remain in the
// file before anything is allocated for it, so a hostile file can neither crash the parser nor make it
// allocate much more than the file's own size.
#include "core/model/archlimits.h"
#include "core/io/gguf.h"

#include "core/util/checked.h"
#include "core/util/error.h"
#include "core/util/job.h"
#include "core/util/strings.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

namespace qs {

namespace {

enum GgufType : uint32_t {
    TypeU8 = 0,
    TypeI8 = 1,
    TypeU16 = 2,
    TypeI16 = 3,
    TypeU32 = 4,
    TypeI32 = 5,
    TypeF32 = 6,
    TypeBool = 7,
    TypeString = 8,
    TypeArray = 9,
    TypeU64 = 10,
    TypeI64 = 11,
    TypeF64 = 12,
    TypeCount
};

constexpr uint32_t kMaxDims = 4;
// Arrays of arrays are legal GGUF; deeper nesting than this is rejected (no real file nests at all).
constexpr int kMaxArrayDepth = 3;
// Upper bound on metadata values (array items included). Real files hold well under a million (vocabulary
// tokens, scores, merges). Numbers and bools cost their width in memory (MetaNumbers), strings and nested
// arrays sizeof(MetaValue) = 40 bytes against at least 8 (a string's length) and 12 in the file.
constexpr uint64_t kMaxMetaValues = uint64_t{8} << 20;
// Metadata entries: llama.cpp writes about 40; each costs ~200 bytes in memory against 13 in the file.
constexpr uint64_t kMaxKvCount = uint64_t{1} << 16;
constexpr uint64_t kDefaultAlignment = 32;
// Smallest encodings, used to bound declared counts by the remaining bytes.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                 // key length, value type, one-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8; // name length, n_dims, one ne, type, offset

uint64_t minValueBytes(uint32_t type)
{
    switch (type) {
    case TypeU8:
    case TypeI8:
    case TypeBool:
        return 1;
    case TypeU16:
    case TypeI16:
        return 2;
    case TypeU32:
    case TypeI32:
    case TypeF32:
        return 4;
    case TypeU64:
    case TypeI64:
    case TypeF64:
        return 8;
    case TypeString:
        return 8;
    case TypeArray:
        return 4 + 8;
    default:
        return 1;
    }
}

class Reader {
public:
    Reader(std::span<const std::byte> data, const std::string& file) : m_data(data), m_file(file) {}

    uint64_t pos() const { return m_pos; }
    uint64_t size() const { return m_data.size(); }
    uint64_t remaining() const { return m_data.size() - m_pos; }
    // What the reader is inside (a key or tensor name), named in errors.
    void setContext(std::string context) { m_context = std::move(context); }

    std::string field(const char* what) const
    {
        return m_context.empty() ? std::string(what) : std::string(what) + " of '" + m_context + "'";
    }

    [[noreturn]] void fail(ErrorCode code, const char* what, uint64_t at, const std::string& message) const
    {
        throw FormatError(code, m_file, field(what), at, message);
    }

    void need(uint64_t n, const char* what) const
    {
        if (n > remaining())
            fail(ErrorCode::Truncated, what, m_pos,
                 "needs " + std::to_string(n) + " bytes but only " + std::to_string(remaining()) +
                     " remain in the file");
    }

    template <typename T> T read(const char* what)
    {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, m_data.data() + m_pos, sizeof(T));
        m_pos += sizeof(T);
        return v;
    }

    std::span<const std::byte> take(uint64_t n, const char* what)
    {
        need(n, what);
        const auto bytes = m_data.subspan(static_cast<size_t>(m_pos), static_cast<size_t>(n));
        m_pos += n;
        return bytes;
    }

    std::string readString(const char* what)
    {
        const uint64_t at = m_pos;
        const auto len = read<uint64_t>(what);
        if (len > remaining())
            fail(ErrorCode::Truncated, what, at,
                 "string of " + std::to_string(len) + " bytes but only " + std::to_string(remaining()) +
                     " remain in the file");
        std::string s(reinterpret_cast<const char*>(m_data.data() + m_pos), static_cast<size_t>(len));
        m_pos += len;
        return s;
    }

private:
    std::span<const std::byte> m_data;
    const std::string& m_file;
    uint64_t m_pos = 0;
    std::string m_context;
};

struct ParseState {
    Reader& reader;
    JobControl* job;
    uint64_t metaValues = 0;
    uint64_t sinceCancelCheck = 0;

    void countValues(uint64_t n, uint64_t at)
    {
        metaValues += n;
        if (metaValues > kMaxMetaValues)
            reader.fail(ErrorCode::Unsupported, "array length", at,
                        "metadata holds more than " + std::to_string(kMaxMetaValues) + " values");
        sinceCancelCheck += n;
        if (sinceCancelCheck >= 65536) {
            sinceCancelCheck = 0;
            checkCancel(job);
        }
    }
};

// The packed type of an array item type, or nullopt for strings and arrays.
std::optional<MetaNumbers::Type> numberType(uint32_t type)
{
    using N = MetaNumbers::Type;
    switch (type) {
    case TypeU8: return N::U8;
    case TypeI8: return N::I8;
    case TypeU16: return N::U16;
    case TypeI16: return N::I16;
    case TypeU32: return N::U32;
    case TypeI32: return N::I32;
    case TypeU64: return N::U64;
    case TypeI64: return N::I64;
    case TypeF32: return N::F32;
    case TypeF64: return N::F64;
    case TypeBool: return N::Bool;
    default: return std::nullopt;
    }
}

MetaValue readValue(ParseState& st, uint32_t type, int depth)
{
    Reader& r = st.reader;
    switch (type) {
    case TypeU8:
        return {uint64_t{r.read<uint8_t>("value")}};
    case TypeI8:
        return {int64_t{r.read<int8_t>("value")}};
    case TypeU16:
        return {uint64_t{r.read<uint16_t>("value")}};
    case TypeI16:
        return {int64_t{r.read<int16_t>("value")}};
    case TypeU32:
        return {uint64_t{r.read<uint32_t>("value")}};
    case TypeI32:
        return {int64_t{r.read<int32_t>("value")}};
    case TypeU64:
        return {r.read<uint64_t>("value")};
    case TypeI64:
        return {r.read<int64_t>("value")};
    case TypeF32:
        return {double{r.read<float>("value")}};
    case TypeF64:
        return {r.read<double>("value")};
    case TypeBool: {
        const uint64_t at = r.pos();
        const auto b = r.read<uint8_t>("value");
        if (b > 1)
            r.fail(ErrorCode::BadValue, "value", at, "bool holds " + std::to_string(b) + ", not 0 or 1");
        return {b == 1};
    }
    case TypeString:
        return {r.readString("value")};
    case TypeArray: {
        if (depth >= kMaxArrayDepth)
            r.fail(ErrorCode::BadValue, "array type", r.pos(),
                   "arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
        const uint64_t typeAt = r.pos();
        const auto elemType = r.read<uint32_t>("array type");
        if (elemType >= TypeCount)
            r.fail(ErrorCode::BadValue, "array type", typeAt,
                   "unknown value type " + std::to_string(elemType));
        const uint64_t countAt = r.pos();
        const auto count = r.read<uint64_t>("array length");
        const uint64_t minBytes = minValueBytes(elemType);
        if (count > r.remaining() / minBytes)
            r.fail(
                ErrorCode::Truncated, "array length", countAt,
                std::to_string(count) + " items need at least " +
                    (checkedMul(count, minBytes) ? std::to_string(count * minBytes) : std::string("2^64+")) +
                    " bytes but only " + std::to_string(r.remaining()) + " remain in the file");
        st.countValues(count, countAt);
        if (const auto numbers = numberType(elemType)) {
            // Numbers and bools stay packed at their width in the file (minBytes above is that width).
            MetaNumbers packed;
            packed.type = *numbers;
            const uint64_t at = r.pos();
            const auto raw = r.take(count * minBytes, "value");
            packed.bytes.assign(raw.begin(), raw.end());
            if (packed.type == MetaNumbers::Type::Bool)
                for (size_t i = 0; i < packed.bytes.size(); ++i)
                    if (std::to_integer<uint8_t>(packed.bytes[i]) > 1)
                        r.fail(ErrorCode::BadValue, "value", at + i,
                               "bool holds " + std::to_string(std::to_integer<uint8_t>(packed.bytes[i])) +
                                   ", not 0 or 1");
            return {std::move(packed)};
        }
        MetaArray items;
        items.reserve(static_cast<size_t>(count));
        for (uint64_t i = 0; i < count; ++i)
            items.push_back(readValue(st, elemType, depth + 1));
        return {std::move(items)};
    }
    default:
        break;
    }
    r.fail(ErrorCode::Internal, "value type", r.pos(), "unhandled value type");
}

struct PendingTensor {
    std::string name;
    uint64_t infoAt = 0;   // where the tensor info starts
    uint64_t offsetAt = 0; // where its offset field is
    TensorInfo info;
    uint64_t relOffset = 0;
};

bool isPowerOfTwo(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

// Config values: any integer type, non-negative, within `max`. Arrays (per-layer values in some
// architectures) yield their largest element.
class ConfigReader {
public:
    ConfigReader(const Model& model, const std::map<std::string, uint64_t>& offsets, const std::string& file)
        : m_meta(model.metadata()), m_offsets(offsets), m_file(file)
    {
    }

    const MetaValue* find(const std::string& key) const
    {
        auto it = m_meta.find(key);
        return it == m_meta.end() ? nullptr : &it->second;
    }

    std::optional<uint64_t> number(const std::string& key, uint64_t max) const
    {
        const MetaValue* v = find(key);
        if (!v)
            return std::nullopt;
        if (v->isArray()) {
            uint64_t best = 0;
            for (size_t i = 0; i < v->arraySize(); ++i)
                best = std::max(best, scalar(key, v->item(i), max));
            return best;
        }
        return scalar(key, *v, max);
    }

    uint32_t u32(const std::string& key) const
    {
        return static_cast<uint32_t>(number(key, std::numeric_limits<uint32_t>::max()).value_or(0));
    }

    [[noreturn]] void fail(const std::string& key, const std::string& message) const
    {
        auto it = m_offsets.find(key);
        throw FormatError(ErrorCode::BadValue, m_file, key,
                          it == m_offsets.end() ? std::nullopt : std::optional<uint64_t>(it->second),
                          message);
    }

private:
    uint64_t scalar(const std::string& key, const MetaValue& v, uint64_t max) const
    {
        uint64_t n = 0;
        if (const auto* u = std::get_if<uint64_t>(&v.value))
            n = *u;
        else if (const auto* i = std::get_if<int64_t>(&v.value)) {
            if (*i < 0)
                fail(key, "negative value " + std::to_string(*i));
            n = static_cast<uint64_t>(*i);
        } else
            fail(key, "expected an integer, found " + v.toString(4));
        if (n > max)
            fail(key, "value " + std::to_string(n) + " is out of range");
        return n;
    }

    const std::map<std::string, MetaValue>& m_meta;
    const std::map<std::string, uint64_t>& m_offsets;
    const std::string& m_file;
};

void fillConfig(Model& model, const std::map<std::string, uint64_t>& offsets, const std::string& file)
{
    ConfigReader cr(model, offsets, file);
    ModelConfig& c = model.mutableConfig();
    if (const MetaValue* arch = cr.find("general.architecture")) {
        const auto* s = std::get_if<std::string>(&arch->value);
        if (!s)
            cr.fail("general.architecture", "expected a string");
        c.architecture = *s;
    }
    const uint32_t u32max = std::numeric_limits<uint32_t>::max();
    if (!c.architecture.empty()) {
        const std::string p = c.architecture + ".";
        c.layers = cr.u32(p + "block_count");
        c.hiddenSize = cr.u32(p + "embedding_length");
        c.intermediateSize = cr.u32(p + "feed_forward_length");
        c.heads = cr.u32(p + "attention.head_count");
        c.kvHeads = cr.u32(p + "attention.head_count_kv");
        if (c.kvHeads == 0 && cr.find(p + "attention.head_count_kv") == nullptr)
            c.kvHeads = c.heads; // GGUF omits the key when there is no grouped-query attention
        c.headDim = cr.u32(p + "attention.key_length");
        if (c.headDim == 0 && c.heads > 0)
            c.headDim = c.hiddenSize / c.heads;
        c.contextLength = cr.number(p + "context_length", std::numeric_limits<uint64_t>::max()).value_or(0);
        c.slidingWindow = cr.u32(p + "attention.sliding_window");
        c.experts = cr.u32(p + "expert_count");
        c.expertsUsed = cr.u32(p + "expert_used_count");
        checkArchitecture(c, file); // before anything loops over layers (block_count may be 2^32 - 1)
        if (c.slidingWindow > 0) {
            const std::string key = p + "attention.sliding_window_pattern";
            const MetaValue* pattern = cr.find(key);
            if (pattern && pattern->isArray()) {
                // One bool per layer: true where the layer uses the window.
                for (size_t i = 0; i < pattern->arraySize(); ++i) {
                    const MetaValue item = pattern->item(i);
                    const auto* b = std::get_if<bool>(&item.value);
                    if (!b)
                        cr.fail(key, "expected an array of bools");
                    if (*b)
                        c.slidingWindowLayers.push_back(static_cast<uint32_t>(i));
                }
            } else {
                // Every n-th layer is global (Gemma 3 writes n; Gemma 2 alternates without saying so).
                uint64_t n =
                    pattern ? cr.number(key, u32max).value_or(0) : (c.architecture == "gemma2" ? 2 : 0);
                if (n > 1)
                    for (uint32_t i = 0; i < c.layers; ++i)
                        if (i % n < n - 1)
                            c.slidingWindowLayers.push_back(i);
            }
        }
    }
    if (const MetaValue* tokens = cr.find("tokenizer.ggml.tokens")) {
        if (!tokens->isArray())
            cr.fail("tokenizer.ggml.tokens", "expected an array");
        if (tokens->arraySize() > u32max)
            cr.fail("tokenizer.ggml.tokens", "too many tokens");
        c.vocabSize = static_cast<uint32_t>(tokens->arraySize());
    }
    if (c.vocabSize == 0 && !c.architecture.empty())
        c.vocabSize = cr.u32(c.architecture + ".vocab_size");
    const TensorInfo* embd = nullptr;
    bool hasOutput = false;
    for (const auto& t : model.tensors()) {
        if (t.name == "token_embd.weight")
            embd = &t;
        else if (t.name == "output.weight")
            hasOutput = true;
    }
    if (c.vocabSize == 0 && embd && embd->shape.size() == 2 && embd->shape[0] <= u32max)
        c.vocabSize = static_cast<uint32_t>(embd->shape[0]);
    c.tiedEmbeddings = embd != nullptr && !hasOutput;
    checkArchitecture(c, file);
}

} // namespace

std::shared_ptr<Model> loadGguf(const std::filesystem::path& path, JobControl* job)
{
    checkCancel(job);
    const std::string file = path.string();
    auto mapped = MappedFile::open(path);
    auto model = std::make_shared<Model>(ModelFormat::Gguf, path);
    const uint32_t fileIndex = model->addFile(mapped);
    Reader r(mapped->bytes(), file);
    ParseState st{r, job};

    // Header.
    const uint64_t magicAt = r.pos();
    const auto magic = r.read<uint32_t>("magic");
    if (std::memcmp(&magic, "GGUF", 4) != 0)
        r.fail(ErrorCode::BadMagic, "magic", magicAt, "not a GGUF file (no \"GGUF\" signature)");
    const uint64_t versionAt = r.pos();
    const auto version = r.read<uint32_t>("version");
    if (version != 2 && version != 3) {
        std::string why = "version " + std::to_string(version) + " is not supported (only 2 and 3)";
        if (version == 1)
            why = "GGUF version 1 (32-bit counts) is not supported; convert the file to version 3";
        else if ((version & 0xFFFFu) == 0 && (version >> 24) >= 1 && (version >> 24) <= 3)
            why = "big-endian GGUF is not supported";
        r.fail(ErrorCode::BadVersion, "version", versionAt, why);
    }
    const uint64_t tensorCountAt = r.pos();
    const auto tensorCount = r.read<uint64_t>("tensor_count");
    const uint64_t kvCountAt = r.pos();
    const auto kvCount = r.read<uint64_t>("kv_count");
    if (tensorCount > r.remaining() / kMinTensorInfoBytes)
        r.fail(ErrorCode::Truncated, "tensor_count", tensorCountAt,
               std::to_string(tensorCount) + " tensors cannot fit in the " + std::to_string(r.remaining()) +
                   " bytes that remain in the file");
    if (kvCount > r.remaining() / kMinKvBytes ||
        kvCount * kMinKvBytes > r.remaining() - tensorCount * kMinTensorInfoBytes)
        r.fail(ErrorCode::Truncated, "kv_count", kvCountAt,
               std::to_string(kvCount) + " metadata entries (and " + std::to_string(tensorCount) +
                   " tensors) cannot fit in the " + std::to_string(r.remaining()) +
                   " bytes that remain in the file");
    if (tensorCount > kMaxTensorCount)
        r.fail(ErrorCode::Unsupported, "tensor_count", tensorCountAt,
               std::to_string(tensorCount) + " tensors exceed the limit of " + std::to_string(kMaxTensorCount));
    if (kvCount > kMaxKvCount)
        r.fail(ErrorCode::Unsupported, "kv_count", kvCountAt,
               std::to_string(kvCount) + " metadata entries exceed the limit of " + std::to_string(kMaxKvCount));
    const double totalItems = static_cast<double>(kvCount + tensorCount) + 1.0;
    reportProgress(job, 0.0, "reading GGUF metadata");

    // Metadata.
    auto& meta = model->mutableMetadata();
    std::map<std::string, uint64_t> keyOffsets;
    uint64_t alignment = kDefaultAlignment;
    for (uint64_t i = 0; i < kvCount; ++i) {
        r.setContext({});
        const uint64_t keyAt = r.pos();
        std::string key = r.readString("key");
        if (key.empty())
            r.fail(ErrorCode::BadValue, "key", keyAt, "empty key");
        if (meta.count(key))
            r.fail(ErrorCode::BadValue, "key", keyAt, "duplicate key '" + key + "'");
        r.setContext(key);
        const uint64_t typeAt = r.pos();
        const auto type = r.read<uint32_t>("value type");
        if (type >= TypeCount)
            r.fail(ErrorCode::BadValue, "value type", typeAt, "unknown value type " + std::to_string(type));
        const uint64_t valueAt = r.pos();
        st.countValues(1, valueAt);
        MetaValue value = readValue(st, type, 0);
        if (key == "general.alignment") {
            const bool isInt = type == TypeU8 || type == TypeU16 || type == TypeU32 || type == TypeU64 ||
                               type == TypeI8 || type == TypeI16 || type == TypeI32 || type == TypeI64;
            if (!isInt)
                r.fail(ErrorCode::BadValue, "value", valueAt, "alignment must be an integer");
            const auto* u = std::get_if<uint64_t>(&value.value);
            const auto* s = std::get_if<int64_t>(&value.value);
            const int64_t signedValue = s ? *s : 0;
            if (s && signedValue <= 0)
                r.fail(ErrorCode::BadValue, "value", valueAt,
                       "alignment " + std::to_string(signedValue) + " is not a power of two");
            alignment = u ? *u : static_cast<uint64_t>(signedValue);
            if (!isPowerOfTwo(alignment))
                r.fail(ErrorCode::BadValue, "value", valueAt,
                       "alignment " + std::to_string(alignment) + " is not a power of two");
        }
        keyOffsets.emplace(key, keyAt);
        meta.emplace(std::move(key), std::move(value));
        if ((i & 255) == 255) {
            checkCancel(job);
            reportProgress(job, static_cast<double>(i) / totalItems, "reading GGUF metadata");
        }
    }

    // Tensor infos.
    r.setContext({});
    reportProgress(job, static_cast<double>(kvCount) / totalItems, "reading GGUF tensor list");
    if (tensorCount > r.remaining() / kMinTensorInfoBytes)
        r.fail(ErrorCode::Truncated, "tensor_count", tensorCountAt,
               std::to_string(tensorCount) + " tensors cannot fit in the " + std::to_string(r.remaining()) +
                   " bytes that remain after the metadata");
    std::vector<PendingTensor> pending;
    pending.reserve(static_cast<size_t>(tensorCount));
    for (uint64_t i = 0; i < tensorCount; ++i) {
        r.setContext("tensor " + std::to_string(i));
        PendingTensor t;
        t.infoAt = r.pos();
        t.name = r.readString("name");
        if (t.name.empty())
            r.fail(ErrorCode::BadValue, "name", t.infoAt, "empty tensor name");
        if (t.name.size() > kMaxTensorNameBytes)
            r.fail(ErrorCode::BadValue, "name", t.infoAt,
                   "tensor name of " + std::to_string(t.name.size()) + " bytes exceeds the limit of " +
                       std::to_string(kMaxTensorNameBytes));
        if (!isValidUtf8(t.name))
            r.fail(ErrorCode::BadValue, "name", t.infoAt,
                   "tensor name '" + escapeControl(t.name) + "' is not valid UTF-8");
        r.setContext(t.name);
        const uint64_t dimsAt = r.pos();
        const auto nDims = r.read<uint32_t>("n_dims");
        if (nDims == 0 || nDims > kMaxDims)
            r.fail(ErrorCode::BadValue, "n_dims", dimsAt,
                   std::to_string(nDims) + " dimensions (must be 1 to " + std::to_string(kMaxDims) + ")");
        uint64_t ne[kMaxDims] = {};
        uint64_t elements = 1;
        for (uint32_t d = 0; d < nDims; ++d) {
            const uint64_t neAt = r.pos();
            ne[d] = r.read<uint64_t>("ne");
            if (ne[d] == 0)
                r.fail(ErrorCode::BadValue, "ne", neAt, "dimension " + std::to_string(d) + " is zero");
            const auto product = checkedMul(elements, ne[d]);
            if (!product || *product > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                r.fail(ErrorCode::Overflow, "ne", neAt, "element count overflows");
            elements = *product;
        }
        const uint64_t typeAt = r.pos();
        const auto ggmlType = r.read<uint32_t>("type");
        const auto dtype = dtypeFromGgmlType(ggmlType);
        if (!dtype)
            r.fail(ErrorCode::Unsupported, "type", typeAt,
                   "unknown ggml tensor type " + std::to_string(ggmlType));
        const auto& info = dtypeInfo(*dtype);
        if (ne[0] % info.blockElements != 0)
            r.fail(ErrorCode::BadValue, "ne", dimsAt + 4,
                   "row length " + std::to_string(ne[0]) + " is not a multiple of the " + info.name +
                       " block size " + std::to_string(info.blockElements));
        const auto bytes = dtypeByteSize(*dtype, elements);
        if (!bytes)
            r.fail(ErrorCode::Overflow, "ne", dimsAt + 4, "byte size overflows");
        t.offsetAt = r.pos();
        t.relOffset = r.read<uint64_t>("offset");
        t.info.name = t.name;
        for (uint32_t d = nDims; d-- > 0;)
            t.info.shape.push_back(ne[d]);
        t.info.dtype = *dtype;
        t.info.bytes = *bytes;
        t.info.fileIndex = fileIndex;
        pending.push_back(std::move(t));
        if ((i & 255) == 255) {
            checkCancel(job);
            reportProgress(job, static_cast<double>(kvCount + i) / totalItems, "reading GGUF tensor list");
        }
    }
    r.setContext({});

    // Duplicate names.
    std::vector<size_t> order(pending.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return pending[a].name != pending[b].name ? pending[a].name < pending[b].name : a < b;
    });
    for (size_t i = 1; i < order.size(); ++i)
        if (pending[order[i]].name == pending[order[i - 1]].name)
            throw FormatError(ErrorCode::BadValue, file, "tensor name", pending[order[i]].infoAt,
                              "duplicate tensor name '" + pending[order[i]].name + "'");

    // Data section: offsets are relative to the aligned end of the header.
    const uint64_t headerEnd = r.pos();
    const auto dataStart = checkedAdd(headerEnd, alignment - 1);
    if (!dataStart)
        throw FormatError(ErrorCode::Overflow, file, "general.alignment", keyOffsets["general.alignment"],
                          "data section start overflows");
    const uint64_t base = *dataStart / alignment * alignment;
    for (auto& t : pending) {
        const std::string field = "offset of '" + t.name + "'";
        if (t.relOffset % alignment != 0)
            throw FormatError(ErrorCode::BadValue, file, field, t.offsetAt,
                              "offset " + std::to_string(t.relOffset) +
                                  " is not a multiple of the alignment " + std::to_string(alignment));
        const auto start = checkedAdd(base, t.relOffset);
        const auto end = start ? checkedAdd(*start, t.info.bytes) : std::nullopt;
        if (!end)
            throw FormatError(ErrorCode::Overflow, file, field, t.offsetAt, "data end overflows");
        if (*end > mapped->size())
            throw FormatError(ErrorCode::Truncated, file, field, t.offsetAt,
                              "data [" + std::to_string(*start) + ", " + std::to_string(*end) +
                                  ") runs past the end of the file (" + std::to_string(mapped->size()) +
                                  " bytes)");
        t.info.offset = *start;
    }
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return pending[a].info.offset != pending[b].info.offset
                   ? pending[a].info.offset < pending[b].info.offset
                   : a < b;
    });
    for (size_t i = 1; i < order.size(); ++i) {
        const auto& prev = pending[order[i - 1]];
        const auto& cur = pending[order[i]];
        if (prev.info.offset + prev.info.bytes > cur.info.offset)
            throw FormatError(ErrorCode::BadValue, file, "offset of '" + cur.name + "'", cur.offsetAt,
                              "data at byte " + std::to_string(cur.info.offset) + " overlaps tensor '" +
                                  prev.name + "' [" + std::to_string(prev.info.offset) + ", " +
                                  std::to_string(prev.info.offset + prev.info.bytes) + ")");
    }

    for (auto& t : pending)
        model->addTensor(std::move(t.info));
    fillConfig(*model, keyOffsets, file);
    model->finalize();
    reportProgress(job, 1.0, "done");
    return model;
}

} // namespace qs
