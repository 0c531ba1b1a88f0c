#include "core/io/safetensorswriter.h"

#include "core/util/atomicfile.h"
#include "core/util/checked.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

namespace qs {

namespace fs = std::filesystem;

const char* safetensorsDTypeName(DType type)
{
    switch (type) {
    case DType::F64:
        return "F64";
    case DType::F32:
        return "F32";
    case DType::F16:
        return "F16";
    case DType::BF16:
        return "BF16";
    case DType::F8_E4M3:
        return "F8_E4M3";
    case DType::F8_E5M2:
        return "F8_E5M2";
    case DType::I64:
        return "I64";
    case DType::I32:
        return "I32";
    case DType::I16:
        return "I16";
    case DType::I8:
        return "I8";
    case DType::U64:
        return "U64";
    case DType::U32:
        return "U32";
    case DType::U16:
        return "U16";
    case DType::U8:
        return "U8";
    case DType::Bool:
        return "BOOL";
    default:
        throw Error(ErrorCode::Unsupported,
                    std::string("safetensors cannot store the block type ") + dtypeName(type));
    }
}

uint64_t safetensorsTensorBytes(const SafetensorsTensorSpec& spec)
{
    safetensorsDTypeName(spec.dtype); // rejects block types
    uint64_t elements = 1;
    for (uint64_t d : spec.shape) {
        const auto p = checkedMul(elements, d);
        if (!p)
            throw Error(ErrorCode::Overflow, spec.name + ": shape product overflows 64 bits");
        elements = *p;
    }
    const auto bytes = dtypeByteSize(spec.dtype, elements);
    if (!bytes)
        throw Error(ErrorCode::Overflow, spec.name + ": size in bytes overflows 64 bits");
    return *bytes;
}

namespace {

constexpr uint64_t kCancelStride = 8ull << 20;

std::string headerFor(const std::vector<const SafetensorsTensorSpec*>& tensors,
                      const std::vector<uint64_t>& sizes, const std::map<std::string, std::string>& metadata)
{
    QJsonObject header;
    if (!metadata.empty()) {
        QJsonObject meta;
        for (const auto& [k, v] : metadata)
            meta.insert(QString::fromStdString(k), QString::fromStdString(v));
        header.insert(QStringLiteral("__metadata__"), meta);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        QJsonArray shape;
        for (uint64_t d : tensors[i]->shape)
            shape.append(static_cast<qint64>(d));
        QJsonObject entry;
        entry.insert(QStringLiteral("dtype"), QString::fromLatin1(safetensorsDTypeName(tensors[i]->dtype)));
        entry.insert(QStringLiteral("shape"), shape);
        entry.insert(QStringLiteral("data_offsets"),
                     QJsonArray{static_cast<qint64>(offset), static_cast<qint64>(offset + sizes[i])});
        header.insert(QString::fromStdString(tensors[i]->name), entry);
        offset += sizes[i];
    }
    std::string text = QJsonDocument(header).toJson(QJsonDocument::Compact).toStdString();
    // Readers that map the file can then view the data region at 8-byte alignment (the format pads with
    // spaces, which JSON ignores).
    text.append((8 - text.size() % 8) % 8, ' ');
    return text;
}

} // namespace

SafetensorsWriteResult writeSafetensors(AtomicFileSet& files, const fs::path& folder,
                                        const std::vector<std::string>& shardNames,
                                        const std::vector<SafetensorsTensorSpec>& specs,
                                        const std::map<std::string, std::string>& metadata,
                                        const TensorProducer& produce, JobControl* job)
{
    if (shardNames.empty())
        throw Error(ErrorCode::Internal, "safetensors writer: no shard names");
    std::vector<std::vector<size_t>> byShard(shardNames.size());
    std::vector<uint64_t> sizes(specs.size());
    uint64_t total = 0;
    {
        std::map<std::string, size_t> seen;
        for (size_t i = 0; i < specs.size(); ++i) {
            if (specs[i].shard >= shardNames.size())
                throw Error(ErrorCode::Internal, specs[i].name + ": shard index out of range");
            if (!seen.emplace(specs[i].name, i).second)
                throw Error(ErrorCode::BadValue, specs[i].name + ": tensor name written twice");
            sizes[i] = safetensorsTensorBytes(specs[i]);
            const auto t = checkedAdd(total, sizes[i]);
            if (!t)
                throw Error(ErrorCode::Overflow, "checkpoint size overflows 64 bits");
            total = *t;
            byShard[specs[i].shard].push_back(i);
        }
    }

    SafetensorsWriteResult result;
    uint64_t done = 0;
    reportBytes(job, 0, total, "Writing tensors");
    for (size_t s = 0; s < shardNames.size(); ++s) {
        const fs::path path = folder / shardNames[s];
        AtomicFile& file = files.add(path);
        result.files.push_back(path);
        std::vector<const SafetensorsTensorSpec*> tensors;
        std::vector<uint64_t> shardSizes;
        for (size_t i : byShard[s]) {
            tensors.push_back(&specs[i]);
            shardSizes.push_back(sizes[i]);
        }
        const std::string header = headerFor(tensors, shardSizes, metadata);
        uint8_t length[8];
        for (int b = 0; b < 8; ++b)
            length[b] = static_cast<uint8_t>((static_cast<uint64_t>(header.size()) >> (8 * b)) & 0xFF);
        file.write(length, 8);
        file.write(header);
        for (size_t i : byShard[s]) {
            checkCancel(job);
            uint64_t produced = 0, sinceCheck = 0;
            const std::string& name = specs[i].name;
            produce(i, [&](const void* data, size_t size) {
                if (size > sizes[i] - produced)
                    throw Error(ErrorCode::Internal,
                                name + ": producer wrote more than " + std::to_string(sizes[i]) + " bytes");
                file.write(data, size);
                produced += size;
                sinceCheck += size;
                if (sinceCheck >= kCancelStride) {
                    sinceCheck = 0;
                    checkCancel(job);
                    reportBytes(job, done + produced, total);
                }
            });
            if (produced != sizes[i])
                throw Error(ErrorCode::Internal, name + ": producer wrote " + std::to_string(produced) +
                                                     " of " + std::to_string(sizes[i]) + " bytes");
            done += produced;
            reportBytes(job, done, total);
        }
        result.bytesWritten += file.bytesWritten();
    }
    result.tensorBytesWritten = done;

    if (shardNames.size() > 1) {
        QJsonObject weightMap;
        for (const auto& spec : specs)
            weightMap.insert(QString::fromStdString(spec.name),
                             QString::fromStdString(shardNames[spec.shard]));
        QJsonObject meta;
        meta.insert(QStringLiteral("total_size"), static_cast<qint64>(total));
        QJsonObject index;
        index.insert(QStringLiteral("metadata"), meta);
        index.insert(QStringLiteral("weight_map"), weightMap);
        const fs::path path = folder / "model.safetensors.index.json";
        AtomicFile& file = files.add(path);
        file.write(QJsonDocument(index).toJson(QJsonDocument::Indented).toStdString());
        result.files.push_back(path);
        result.bytesWritten += file.bytesWritten();
    }
    return result;
}

} // namespace qs
