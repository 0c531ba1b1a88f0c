#include "core/model/model.h"

#include "core/model/matrixview.h"
#include "core/util/error.h"

#include <cstring>
#include <sstream>

namespace qs {

const char* modelFormatName(ModelFormat format)
{
    switch (format) {
    case ModelFormat::Safetensors: return "safetensors";
    case ModelFormat::Gguf: return "gguf";
    case ModelFormat::Hdf5: return "hdf5";
    case ModelFormat::Keras: return "keras";
    case ModelFormat::ConfigOnly: return "config";
    }
    return "unknown";
}

uint64_t TensorInfo::elements() const
{
    uint64_t n = 1;
    for (auto d : shape)
        n *= d; // loaders verify that this product does not overflow
    return n;
}

uint64_t TensorInfo::columns() const { return shape.empty() ? 1 : shape.back(); }

uint64_t TensorInfo::rows() const
{
    const uint64_t c = columns();
    return c == 0 ? 0 : elements() / c;
}

size_t MetaNumbers::width(Type type)
{
    switch (type) {
    case Type::U8:
    case Type::I8:
    case Type::Bool: return 1;
    case Type::U16:
    case Type::I16: return 2;
    case Type::U32:
    case Type::I32:
    case Type::F32: return 4;
    case Type::U64:
    case Type::I64:
    case Type::F64: return 8;
    }
    return 1;
}

namespace {

template <typename T> T itemAt(const std::vector<std::byte>& bytes, size_t i)
{
    T v;
    std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
    return v;
}

} // namespace

MetaValue MetaNumbers::at(size_t i) const
{
    switch (type) {
    case Type::U8: return {uint64_t{itemAt<uint8_t>(bytes, i)}};
    case Type::I8: return {int64_t{itemAt<int8_t>(bytes, i)}};
    case Type::U16: return {uint64_t{itemAt<uint16_t>(bytes, i)}};
    case Type::I16: return {int64_t{itemAt<int16_t>(bytes, i)}};
    case Type::U32: return {uint64_t{itemAt<uint32_t>(bytes, i)}};
    case Type::I32: return {int64_t{itemAt<int32_t>(bytes, i)}};
    case Type::U64: return {itemAt<uint64_t>(bytes, i)};
    case Type::I64: return {itemAt<int64_t>(bytes, i)};
    case Type::F32: return {double{itemAt<float>(bytes, i)}};
    case Type::F64: return {itemAt<double>(bytes, i)};
    case Type::Bool: return {itemAt<uint8_t>(bytes, i) != 0};
    }
    return {uint64_t{0}};
}

bool MetaValue::isArray() const
{
    return std::holds_alternative<MetaArray>(value) || std::holds_alternative<MetaNumbers>(value);
}

size_t MetaValue::arraySize() const
{
    if (const auto* a = std::get_if<MetaArray>(&value))
        return a->size();
    if (const auto* n = std::get_if<MetaNumbers>(&value))
        return n->size();
    return 0;
}

MetaValue MetaValue::item(size_t i) const
{
    if (const auto* n = std::get_if<MetaNumbers>(&value))
        return n->at(i);
    return std::get<MetaArray>(value).at(i);
}

std::string MetaValue::toString(size_t maxArrayItems) const
{
    return std::visit(
        [&](const auto& v) -> std::string {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string>) {
                return v;
            } else if constexpr (std::is_same_v<T, bool>) {
                return v ? "true" : "false";
            } else if constexpr (std::is_same_v<T, MetaArray> || std::is_same_v<T, MetaNumbers>) {
                std::string s = "[";
                for (size_t i = 0; i < v.size() && i < maxArrayItems; ++i)
                    s += (i ? ", " : "") + item(i).toString(maxArrayItems);
                if (v.size() > maxArrayItems)
                    s += ", … (" + std::to_string(v.size()) + " items)";
                return s + "]";
            } else if constexpr (std::is_same_v<T, double>) {
                std::ostringstream os;
                os << v;
                return os.str();
            } else {
                return std::to_string(v);
            }
        },
        value);
}

Model::Model(ModelFormat format, std::filesystem::path path) : m_format(format), m_path(std::move(path)) {}

const TensorInfo* Model::find(std::string_view name) const
{
    auto it = m_index.find(name);
    return it == m_index.end() ? nullptr : &m_tensors[it->second];
}

uint64_t Model::parameterCount() const
{
    uint64_t n = 0;
    for (const auto& t : m_tensors)
        n += t.elements();
    return n;
}

uint64_t Model::totalBytes() const
{
    uint64_t n = 0;
    for (const auto& t : m_tensors)
        n += t.packed ? t.packed->storedBytes : t.bytes;
    return n;
}

double Model::bitsPerWeight() const
{
    const uint64_t p = parameterCount();
    return p ? 8.0 * static_cast<double>(totalBytes()) / static_cast<double>(p) : 0.0;
}

std::span<const std::byte> Model::rawData(const TensorInfo& tensor) const
{
    if (tensor.fileIndex >= m_files.size())
        throw Error(ErrorCode::Internal, "tensor " + tensor.name + " refers to a missing file");
    return m_files[tensor.fileIndex]->range(tensor.offset, tensor.bytes, tensor.name.c_str());
}

void Model::decode(const TensorInfo& tensor, uint64_t first, uint64_t count, float* out) const
{
    const uint64_t n = tensor.elements();
    if (first > n || count > n - first)
        throw Error(ErrorCode::Internal, "decode range outside tensor " + tensor.name);
    if (tensor.packed) {
        tensor.packed->decode(first, count, out);
        return;
    }
    const auto& info = dtypeInfo(tensor.dtype);
    if (first % info.blockElements != 0 || (count % info.blockElements != 0 && first + count != n))
        throw Error(ErrorCode::Internal, "decode range of " + tensor.name + " is not block aligned");
    const auto data = rawData(tensor);
    const uint64_t byteOffset = first / info.blockElements * info.blockBytes;
    decodeToFloat(tensor.dtype, data.data() + byteOffset, count, out);
}

void Model::decodeRows(const TensorInfo& tensor, uint64_t firstRow, uint64_t rowCount, float* out) const
{
    const uint64_t c = tensor.columns();
    decode(tensor, firstRow * c, rowCount * c, out);
}

uint32_t Model::addFile(std::shared_ptr<MappedFile> file)
{
    m_files.push_back(std::move(file));
    return static_cast<uint32_t>(m_files.size() - 1);
}

uint32_t Model::fileShard(uint32_t fileIndex) const
{
    const auto it = m_fileShard.find(fileIndex);
    return it == m_fileShard.end() ? fileIndex : it->second;
}

void Model::setFileShard(uint32_t fileIndex, uint32_t shard)
{
    m_fileShard[fileIndex] = shard;
}

void Model::addWarning(std::string message)
{
    constexpr size_t kKept = 1000;
    if (m_warnings.size() < kKept)
        m_warnings.push_back(std::move(message));
    else if (m_warnings.size() == kKept)
        m_warnings.push_back("further warnings were not kept");
}

void Model::addTensor(TensorInfo tensor)
{
    tensor.role = classifyTensor(tensor.name, tensor.shape.size());
    m_tensors.push_back(std::move(tensor));
}

void Model::finalize()
{
    m_index.clear();
    for (size_t i = 0; i < m_tensors.size(); ++i) {
        TensorInfo& t = m_tensors[i];
        m_index.emplace(t.name, i);
        t.viewRows = t.viewColumns = 0;
        const MatrixView view = matrixViewOf(*this, t);
        if (view.rows != t.rows() || view.cols != t.columns()) {
            t.viewRows = view.rows;
            t.viewColumns = view.cols;
        }
    }
}

} // namespace qs
