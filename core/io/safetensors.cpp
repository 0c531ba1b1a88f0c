#include "core/model/archlimits.h"
#include "core/io/safetensors.h"

#include "core/io/jsonscan.h"
#include "core/io/packedweights.h"
#include "core/util/checked.h"
#include "core/util/error.h"
#include "core/util/job.h"
#include "core/util/strings.h"

#include <QByteArray>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonValue>
#include <algorithm>
#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <string_view>

namespace qs {

namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000; // the format's own limit
constexpr uint64_t kMaxIndexBytes = 100ull * 1000 * 1000;
constexpr size_t kCancelEvery = 4096;

struct FormatDType {
    std::string_view name;
    std::optional<DType> type; // nullopt: defined by the format, not representable here
};

constexpr FormatDType kDTypes[] = {
    {"F64", DType::F64},       {"F32", DType::F32},         {"F16", DType::F16},
    {"BF16", DType::BF16},     {"F8_E4M3", DType::F8_E4M3}, {"F8_E5M2", DType::F8_E5M2},
    {"I64", DType::I64},       {"I32", DType::I32},         {"I16", DType::I16},
    {"I8", DType::I8},         {"U64", DType::U64},         {"U32", DType::U32},
    {"U16", DType::U16},       {"U8", DType::U8},           {"BOOL", DType::Bool},
    {"F8_E8M0", std::nullopt}, {"F4", std::nullopt},        {"F6_E2M3", std::nullopt},
    {"F6_E3M2", std::nullopt}, {"C64", std::nullopt},
};

// A JSON text held in a map, with byte positions translated to file offsets.
struct JsonText {
    std::string file;
    std::string_view text;
    uint64_t base; // file offset of text[0]

    [[noreturn]] void fail(ErrorCode code, const std::string& field, size_t pos, const std::string& msg) const
    {
        throw FormatError(code, file, field, base + pos, msg);
    }
};

const json::Member* findMember(const std::vector<json::Member>& members, std::string_view key)
{
    for (const auto& m : members)
        if (m.key == key)
            return &m;
    return nullptr;
}

// Non-negative integer literal (QJsonValue keeps integers up to 2^63 exactly).
std::optional<uint64_t> toCount(const QJsonValue& v)
{
    if (!v.isDouble())
        return std::nullopt;
    const qint64 i = v.toInteger(-1);
    if (i < 0)
        return std::nullopt;
    return static_cast<uint64_t>(i);
}

struct ParsedTensor {
    TensorInfo info;
    uint64_t begin = 0, end = 0;
    uint64_t fieldOffset = 0; // file offset of the tensor's data_offsets (or entry) for error messages
};

struct ParsedFile {
    std::shared_ptr<MappedFile> file;
    std::vector<ParsedTensor> tensors; // in data order
    std::map<std::string, std::string> metadata;
    uint64_t headerBytes = 0;
};

void parseMetadata(const JsonText& js, const json::Member& m, const QJsonValue& value, ParsedFile& out)
{
    if (!value.isObject())
        js.fail(ErrorCode::BadValue, "__metadata__", m.valueOffset, "must be an object of strings");
    const auto obj = value.toObject();
    const auto members = json::objectMembers(js.text, m.valueOffset);
    if (members.size() != static_cast<size_t>(obj.size())) {
        const auto* dup = json::findDuplicate(members);
        js.fail(ErrorCode::BadValue, "__metadata__." + (dup ? dup->key : std::string()),
                dup ? dup->keyOffset : m.valueOffset, "appears twice");
    }
    for (const auto& mm : members) {
        const auto v = obj.value(QString::fromStdString(mm.key));
        if (!v.isString())
            js.fail(ErrorCode::BadValue, "__metadata__." + mm.key, mm.valueOffset,
                    "metadata values must be strings");
        out.metadata[mm.key] = v.toString().toStdString();
    }
}

ParsedTensor parseEntry(const JsonText& js, const json::Member& m, const QJsonValue& value,
                        uint64_t dataStart, uint64_t dataSize)
{
    const std::string& name = m.key;
    if (name.size() > kMaxTensorNameBytes)
        js.fail(ErrorCode::BadValue, "tensor name", m.keyOffset,
                "tensor name of " + std::to_string(name.size()) + " bytes exceeds the limit of " +
                    std::to_string(kMaxTensorNameBytes));
    if (!value.isObject())
        js.fail(ErrorCode::BadValue, name, m.valueOffset, "tensor entry is not an object");
    const auto obj = value.toObject();
    const auto members = json::objectMembers(js.text, m.valueOffset);
    if (members.size() != static_cast<size_t>(obj.size())) {
        const auto* dup = json::findDuplicate(members);
        js.fail(ErrorCode::BadValue, name, dup ? dup->keyOffset : m.valueOffset,
                "key '" + (dup ? dup->key : std::string()) + "' appears twice");
    }
    auto posOf = [&](std::string_view key) {
        const auto* f = findMember(members, key);
        return f ? f->valueOffset : m.valueOffset;
    };

    ParsedTensor t;
    t.info.name = name;

    const auto dtypeValue = obj.value(QStringLiteral("dtype"));
    if (dtypeValue.isUndefined())
        js.fail(ErrorCode::BadValue, name, m.valueOffset, "missing dtype");
    if (!dtypeValue.isString())
        js.fail(ErrorCode::BadValue, name, posOf("dtype"), "dtype must be a string");
    const std::string dtypeName = dtypeValue.toString().toStdString();
    const FormatDType* known = nullptr;
    for (const auto& d : kDTypes)
        if (d.name == dtypeName)
            known = &d;
    if (!known)
        js.fail(ErrorCode::BadValue, name, posOf("dtype"), "unknown dtype '" + dtypeName + "'");
    if (!known->type)
        js.fail(ErrorCode::Unsupported, name, posOf("dtype"), "unsupported dtype " + dtypeName);
    t.info.dtype = *known->type;

    const auto shapeValue = obj.value(QStringLiteral("shape"));
    if (shapeValue.isUndefined())
        js.fail(ErrorCode::BadValue, name, m.valueOffset, "missing shape");
    if (!shapeValue.isArray())
        js.fail(ErrorCode::BadValue, name, posOf("shape"), "shape must be an array of integers");
    uint64_t elements = 1;
    const auto shapeArray = shapeValue.toArray();
    t.info.shape.reserve(static_cast<size_t>(shapeArray.size()));
    for (const auto& d : shapeArray) {
        const auto dim = toCount(d);
        if (!dim)
            js.fail(ErrorCode::BadValue, name, posOf("shape"), "shape must hold non-negative integers");
        const auto product = checkedMul(elements, *dim);
        if (!product)
            js.fail(ErrorCode::Overflow, name, posOf("shape"), "shape product overflows 64 bits");
        elements = *product;
        t.info.shape.push_back(*dim);
    }

    const auto offsetsValue = obj.value(QStringLiteral("data_offsets"));
    if (offsetsValue.isUndefined())
        js.fail(ErrorCode::BadValue, name, m.valueOffset, "missing data_offsets");
    const auto offsetsArray = offsetsValue.toArray();
    if (!offsetsValue.isArray() || offsetsArray.size() != 2)
        js.fail(ErrorCode::BadValue, name, posOf("data_offsets"), "data_offsets must be [begin, end]");
    const auto begin = toCount(offsetsArray.at(0));
    const auto end = toCount(offsetsArray.at(1));
    if (!begin || !end || *begin > *end)
        js.fail(ErrorCode::BadValue, name, posOf("data_offsets"),
                "data_offsets must be two non-negative integers with begin <= end");
    t.begin = *begin;
    t.end = *end;
    t.fieldOffset = js.base + posOf("data_offsets");

    const auto bytes = dtypeByteSize(t.info.dtype, elements);
    if (!bytes)
        js.fail(ErrorCode::Overflow, name, posOf("shape"), "tensor size in bytes overflows 64 bits");
    if (*end > dataSize)
        js.fail(ErrorCode::Truncated, name, posOf("data_offsets"),
                "data ends at " + std::to_string(*end) + " but the data region holds " +
                    std::to_string(dataSize) + " bytes");
    if (*end - *begin != *bytes)
        js.fail(ErrorCode::BadValue, name, posOf("data_offsets"),
                "data_offsets span " + std::to_string(*end - *begin) + " bytes but shape x " + dtypeName +
                    " needs " + std::to_string(*bytes));
    t.info.bytes = *bytes;
    t.info.offset = dataStart + *begin; // cannot overflow: both are bounded by the file size
    return t;
}

ParsedFile parseFile(const fs::path& path, JobControl* job)
{
    ParsedFile out;
    out.file = MappedFile::open(path);
    const std::string file = path.string();
    const uint64_t size = out.file->size();
    if (size < 8)
        throw FormatError(ErrorCode::Truncated, file, "header length", 0,
                          "file has " + std::to_string(size) + " bytes, a safetensors file needs at least 8");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
        n = (n << 8) | static_cast<uint8_t>(out.file->data()[i]);
    if (n == 0)
        throw FormatError(ErrorCode::BadValue, file, "header length", 0, "header length is 0");
    if (n > size - 8)
        throw FormatError(ErrorCode::Truncated, file, "header length", 0,
                          "header of " + std::to_string(n) + " bytes does not fit in a file of " +
                              std::to_string(size) + " bytes");
    if (n > kMaxHeaderBytes)
        throw FormatError(ErrorCode::BadValue, file, "header length", 0,
                          "header of " + std::to_string(n) + " bytes exceeds the format's 100 MB limit");
    out.headerBytes = n;

    const JsonText js{file, {reinterpret_cast<const char*>(out.file->data()) + 8, static_cast<size_t>(n)}, 8};
    std::vector<json::Member> members;
    const auto obj = json::parseObject(js.text, js.file, js.base, "header", &members);

    if (members.size() > kMaxTensorCount + 1) // + __metadata__
        throw FormatError(ErrorCode::Unsupported, file, "header", 8,
                          std::to_string(members.size()) + " entries exceed the limit of " +
                              std::to_string(kMaxTensorCount) + " tensors");
    const uint64_t dataStart = 8 + n;
    const uint64_t dataSize = size - dataStart;
    out.tensors.reserve(members.size());
    size_t counter = 0;
    for (const auto& m : members) {
        if (++counter % kCancelEvery == 0)
            checkCancel(job);
        const auto value = obj.value(QString::fromStdString(m.key));
        if (value.isUndefined())
            js.fail(ErrorCode::BadValue, m.key, m.keyOffset, "key cannot be decoded");
        if (m.key == "__metadata__")
            parseMetadata(js, m, value, out);
        else
            out.tensors.push_back(parseEntry(js, m, value, dataStart, dataSize));
    }

    // The tensors must tile the data region: no overlap, no gap, nothing after the last one.
    std::stable_sort(out.tensors.begin(), out.tensors.end(),
                     [](const ParsedTensor& a, const ParsedTensor& b) {
                         return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                     });
    uint64_t expected = 0;
    const ParsedTensor* previous = nullptr;
    for (const auto& t : out.tensors) {
        if (t.begin < expected)
            throw FormatError(ErrorCode::BadValue, file, t.info.name, t.fieldOffset,
                              "data [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                                  ") overlaps " +
                                  (previous ? previous->info.name : std::string("another tensor")));
        if (t.begin > expected)
            throw FormatError(ErrorCode::BadValue, file, t.info.name, t.fieldOffset,
                              "data starts at " + std::to_string(t.begin) + ", leaving a hole of " +
                                  std::to_string(t.begin - expected) + " bytes before it");
        expected = t.end;
        previous = &t;
    }
    if (expected != dataSize)
        throw FormatError(ErrorCode::BadValue, file, "data", dataStart + expected,
                          std::to_string(dataSize - expected) + " trailing bytes after the last tensor");
    return out;
}

// ---- which files make up the checkpoint

struct IndexEntry {
    std::string shard; // normalised relative path
    uint64_t valueOffset = 0;
    bool seen = false;
};

struct Checkpoint {
    std::vector<fs::path> shards;
    std::optional<fs::path> index;
    std::map<std::string, IndexEntry, std::less<>> weightMap; // tensor -> shard (sharded with index only)
    std::map<std::string, MetaValue> indexMetadata;
};

bool isInside(const fs::path& folder, const fs::path& p)
{
    std::error_code ec;
    const auto root = fs::canonical(folder, ec);
    if (ec)
        return false;
    const auto target = fs::canonical(p, ec);
    if (ec)
        return false;
    auto r = root.begin();
    auto t = target.begin();
    for (; r != root.end(); ++r, ++t)
        if (t == target.end() || *r != *t)
            return false;
    return t != target.end();
}

MetaValue toMeta(const QJsonValue& v)
{
    if (v.isBool())
        return {v.toBool()};
    if (v.isString())
        return {v.toString().toStdString()};
    if (v.isDouble()) {
        // toInteger() returns the default unless the number is a whole value that fits in qint64.
        const qint64 i = v.toInteger(-1);
        if (i >= 0)
            return {static_cast<uint64_t>(i)};
        if (i == -1 && v.toInteger(0) == -1)
            return {int64_t{-1}};
        if (i < -1)
            return {static_cast<int64_t>(i)};
        return {v.toDouble()};
    }
    if (v.isArray())
        return {QJsonDocument(v.toArray()).toJson(QJsonDocument::Compact).toStdString()};
    if (v.isObject())
        return {QJsonDocument(v.toObject()).toJson(QJsonDocument::Compact).toStdString()};
    return {std::string("null")};
}

Checkpoint readIndex(const fs::path& indexPath)
{
    Checkpoint cp;
    cp.index = indexPath;
    const auto file = MappedFile::open(indexPath);
    const std::string name = indexPath.string();
    if (file->size() > kMaxIndexBytes)
        throw FormatError(ErrorCode::BadValue, name, "index", 0, "index file exceeds 100 MB");
    const JsonText js{
        name, {reinterpret_cast<const char*>(file->data()), static_cast<size_t>(file->size())}, 0};
    std::vector<json::Member> members;
    const auto obj = json::parseObject(js.text, js.file, js.base, "index", &members);

    if (const auto* meta = findMember(members, "metadata")) {
        const auto value = obj.value(QStringLiteral("metadata"));
        if (!value.isObject() && !value.isNull())
            js.fail(ErrorCode::BadValue, "metadata", meta->valueOffset, "must be an object");
        const auto metaObj = value.toObject();
        for (auto it = metaObj.begin(); it != metaObj.end(); ++it)
            cp.indexMetadata[it.key().toStdString()] = toMeta(it.value());
    }

    const auto* wm = findMember(members, "weight_map");
    if (!wm)
        js.fail(ErrorCode::BadValue, "weight_map", 0, "missing weight_map");
    const auto wmValue = obj.value(QStringLiteral("weight_map"));
    if (!wmValue.isObject())
        js.fail(ErrorCode::BadValue, "weight_map", wm->valueOffset, "weight_map must be an object");
    const auto wmObj = wmValue.toObject();
    const auto entries = json::objectMembers(js.text, wm->valueOffset);
    if (entries.size() != static_cast<size_t>(wmObj.size())) {
        const auto* dup = json::findDuplicate(entries);
        js.fail(ErrorCode::BadValue, dup ? dup->key : "weight_map", dup ? dup->keyOffset : wm->valueOffset,
                "listed twice in weight_map");
    }

    const fs::path folder = indexPath.parent_path().empty() ? fs::path(".") : indexPath.parent_path();
    std::map<std::string, fs::path> shardPaths;
    for (const auto& e : entries) {
        const auto v = wmObj.value(QString::fromStdString(e.key));
        if (!v.isString() || v.toString().isEmpty())
            js.fail(ErrorCode::BadValue, e.key, e.valueOffset, "shard must be a non-empty file name");
        const std::string shard = v.toString().toStdString();
        const fs::path rel = fs::path(shard).lexically_normal();
        bool escapes = rel.is_absolute() || rel.has_root_name() || rel.has_root_directory() ||
                       shard.find('\0') != std::string::npos;
        for (const auto& part : rel)
            if (part == "..")
                escapes = true;
        if (escapes)
            js.fail(ErrorCode::BadValue, e.key, e.valueOffset,
                    "shard '" + shard + "' points outside the folder");
        const std::string key = rel.generic_string();
        auto found = shardPaths.find(key);
        if (found == shardPaths.end()) {
            const fs::path full = folder / rel;
            std::error_code ec;
            if (!fs::exists(full, ec))
                js.fail(ErrorCode::Io, e.key, e.valueOffset, "shard '" + shard + "' does not exist");
            if (!isInside(folder, full))
                js.fail(ErrorCode::BadValue, e.key, e.valueOffset,
                        "shard '" + shard + "' resolves outside the folder");
            if (!fs::is_regular_file(full, ec))
                js.fail(ErrorCode::Io, e.key, e.valueOffset, "shard '" + shard + "' is not a regular file");
            found = shardPaths.emplace(key, full).first;
        }
        cp.weightMap.emplace(e.key, IndexEntry{key, e.valueOffset, false});
    }
    for (const auto& [key, full] : shardPaths)
        cp.shards.push_back(full);
    return cp;
}

std::optional<fs::path> findIndexIn(const fs::path& folder)
{
    std::error_code ec;
    if (fs::is_regular_file(folder / "model.safetensors.index.json", ec))
        return folder / "model.safetensors.index.json";
    std::vector<fs::path> found;
    for (const auto& entry : fs::directory_iterator(folder, ec))
        if (entry.path().filename().string().ends_with(".safetensors.index.json") &&
            entry.is_regular_file(ec))
            found.push_back(entry.path());
    std::sort(found.begin(), found.end());
    if (found.empty())
        return std::nullopt;
    return found.front();
}

Checkpoint resolve(const fs::path& path)
{
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        if (const auto index = findIndexIn(path))
            return readIndex(*index);
        Checkpoint cp;
        if (fs::is_regular_file(path / "model.safetensors", ec)) {
            cp.shards.push_back(path / "model.safetensors");
            return cp;
        }
        for (const auto& entry : fs::directory_iterator(path, ec))
            if (entry.path().extension() == ".safetensors" && entry.is_regular_file(ec))
                cp.shards.push_back(entry.path());
        if (cp.shards.empty())
            throw Error(ErrorCode::Io, path.string() + ": the folder holds no .safetensors file");
        std::sort(cp.shards.begin(), cp.shards.end());
        return cp;
    }
    const std::string name = path.filename().string();
    if (name.ends_with(".index.json"))
        return readIndex(path);

    // One shard of a checkpoint: open the whole checkpoint.
    static const std::regex shardName(R"((.+)-(\d+)-of-(\d+)\.safetensors)");
    std::smatch match;
    if (std::regex_match(name, match, shardName)) {
        const fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
        const fs::path index = folder / (match[1].str() + ".safetensors.index.json");
        if (fs::is_regular_file(index, ec)) {
            auto cp = readIndex(index);
            for (const auto& s : cp.shards)
                if (fs::equivalent(s, path, ec))
                    return cp;
        }
        const std::string countText = match[3].str();
        const unsigned long count = countText.size() <= 5 ? std::stoul(countText) : 0;
        if (count >= 1 && count <= 99999) {
            Checkpoint cp;
            const size_t width = match[2].length();
            for (unsigned long i = 1; i <= count; ++i) {
                std::string num = std::to_string(i);
                if (num.size() < width)
                    num.insert(0, width - num.size(), '0');
                const fs::path shard =
                    folder / (match[1].str() + "-" + num + "-of-" + countText + ".safetensors");
                if (!fs::is_regular_file(shard, ec))
                    throw FormatError(ErrorCode::Io, path.string(), shard.filename().string(), std::nullopt,
                                      "shard " + std::to_string(i) + " of " + countText + " is missing");
                cp.shards.push_back(shard);
            }
            return cp;
        }
    }
    Checkpoint cp;
    cp.shards.push_back(path);
    return cp;
}

// Without config.json, what the tensors themselves show: block count, embedding size, vocabulary, whether
// the head is tied (an embedding and no head). Heads and the architecture cannot be seen and stay unknown.
void inferConfig(Model& model)
{
    ModelConfig& c = model.mutableConfig();
    int maxBlock = -1;
    const TensorInfo* embedding = nullptr;
    bool head = false;
    for (const auto& t : model.tensors()) {
        maxBlock = std::max(maxBlock, t.role.block);
        if (t.role.role == TensorRole::Embedding && t.shape.size() == 2 && !embedding)
            embedding = &t;
        head = head || t.role.role == TensorRole::OutputHead;
    }
    c.layers = static_cast<uint32_t>(maxBlock + 1);
    if (embedding && embedding->shape[0] <= UINT32_MAX && embedding->shape[1] <= UINT32_MAX) {
        c.vocabSize = static_cast<uint32_t>(embedding->shape[0]);
        c.hiddenSize = static_cast<uint32_t>(embedding->shape[1]);
        c.tiedEmbeddings = !head;
    }
    checkArchitecture(c, model.path().string()); // a name like layers.4294967290 claims 2^32 layers
}

} // namespace

std::shared_ptr<Model> loadSafetensors(const std::filesystem::path& path, JobControl* job)
{
    checkCancel(job);
    Checkpoint cp = resolve(path);
    auto model = std::make_shared<Model>(ModelFormat::Safetensors, path);
    for (auto& [key, value] : cp.indexMetadata)
        model->mutableMetadata()[key] = value;

    // tensor -> shard that holds it, to find a tensor stored twice
    std::map<std::string, std::string, std::less<>> owner;
    std::vector<StoredTensor> stored;
    const size_t shardCount = cp.shards.size();
    for (size_t s = 0; s < shardCount; ++s) {
        checkCancel(job);
        const fs::path& shardPath = cp.shards[s];
        reportProgress(job, static_cast<double>(s) / static_cast<double>(shardCount),
                       "Reading " + shardPath.filename().string() + " (" + std::to_string(s + 1) + " of " +
                           std::to_string(shardCount) + ")");
        ParsedFile parsed = parseFile(shardPath, job);
        const std::string shardKey =
            cp.index ? shardPath
                           .lexically_relative(cp.index->parent_path().empty() ? fs::path(".")
                                                                               : cp.index->parent_path())
                           .lexically_normal()
                           .generic_string()
                     : shardPath.filename().string();
        const uint32_t fileIndex = model->addFile(parsed.file);
        for (auto& [key, value] : parsed.metadata)
            model->mutableMetadata().emplace(key, MetaValue{value});
        for (auto& t : parsed.tensors) {
            const auto [it, inserted] = owner.emplace(t.info.name, shardPath.filename().string());
            if (!inserted)
                throw FormatError(ErrorCode::BadValue, shardPath.string(), t.info.name, t.fieldOffset,
                                  "tensor is also stored in " + it->second);
            if (cp.index) {
                auto listed = cp.weightMap.find(t.info.name);
                if (listed == cp.weightMap.end())
                    throw FormatError(ErrorCode::BadValue, shardPath.string(), t.info.name, t.fieldOffset,
                                      "tensor is not listed in " + cp.index->filename().string());
                if (listed->second.shard != shardKey)
                    throw FormatError(ErrorCode::BadValue, shardPath.string(), t.info.name, t.fieldOffset,
                                      "tensor is stored here but " + cp.index->filename().string() +
                                          " places it in " + listed->second.shard);
                listed->second.seen = true;
            }
            t.info.fileIndex = fileIndex;
            stored.push_back({std::move(t.info), shardPath.string(), t.fieldOffset});
        }
    }
    // Quantized checkpoints (GPTQ, compressed-tensors): each weight's parts become one logical tensor.
    groupPackedWeights(stored, model->files());
    for (auto& t : stored)
        model->addTensor(std::move(t.info));
    if (cp.index)
        for (const auto& [name, entry] : cp.weightMap)
            if (!entry.seen)
                throw FormatError(ErrorCode::BadValue, cp.index->string(), name, entry.valueOffset,
                                  "tensor is listed in the index but absent from " + entry.shard);
    std::error_code ec;
    const fs::path folder = fs::is_directory(path, ec) ? path : path.parent_path();
    const fs::path config = (folder.empty() ? fs::path(".") : folder) / "config.json";
    bool haveConfig = false;
    if (fs::is_regular_file(config, ec)) {
        try {
            model->mutableConfig() = readHfConfig(config);
            haveConfig = true;
        } catch (const CancelledError&) {
            throw;
        } catch (const Error& e) {
            model->mutableMetadata()["config_error"] = MetaValue{std::string(e.what())};
            model->addWarning(std::string(e.what()) +
                              " — config.json was not used; the architecture is inferred from tensor names");
        }
    }
    if (!haveConfig)
        inferConfig(*model);
    model->finalize();
    reportProgress(job, 1.0, "Done");
    return model;
}

} // namespace qs
