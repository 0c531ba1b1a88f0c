#include "core/model/overlay.h"

#include "core/model/dtype.h"
#include "core/model/mappedfile.h"
#include "core/util/error.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace qs {

namespace {

// Writes all of data to fd or throws.
void writeAll(int fd, const char* data, size_t size, const std::string& path)
{
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            throw Error(ErrorCode::Io, path + ": cannot write: " + std::strerror(errno));
        data += n;
        size -= size_t(n);
    }
}

// The stored bytes of a replacement: in the tensor's own dtype when it is a float type (the layout of a
// written checkpoint stays the same), else F32 (a quantized original is re-quantized from it anyway).
DType replacementType(DType original)
{
    return original == DType::F16 || original == DType::BF16 ? original : DType::F32;
}

std::vector<char> encode(const std::vector<float>& v, DType type)
{
    std::vector<char> out;
    if (type == DType::F32) {
        out.resize(v.size() * sizeof(float));
        std::memcpy(out.data(), v.data(), out.size());
        return out;
    }
    out.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = type == DType::F16 ? floatToHalf(v[i]) : floatToBf16(v[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
    }
    return out;
}

} // namespace

OverlayBuilder::OverlayBuilder(const Model& base) : m_base(base) {}

OverlayBuilder::~OverlayBuilder()
{
    for (auto& [shard, spill] : m_spills)
        if (spill.fd >= 0)
            ::close(spill.fd);
}

void OverlayBuilder::replace(const std::string& name, const std::vector<float>& values)
{
    const TensorInfo* t = m_base.find(name);
    if (!t)
        throw Error(ErrorCode::BadValue, "no tensor '" + name + "' to replace");
    if (values.size() != t->elements())
        throw Error(ErrorCode::BadValue, "the replacement for " + name + " has " + std::to_string(values.size()) +
                                             " values, the tensor " + std::to_string(t->elements()));
    if (m_placed.count(name))
        throw Error(ErrorCode::BadValue, "the tensor " + name + " is replaced twice");
    const uint32_t shard = m_base.fileShard(t->fileIndex);
    Spill& spill = m_spills[shard];
    if (spill.fd < 0) {
        spill.name = (std::filesystem::temp_directory_path() / "quantscope-weights-XXXXXX").string();
        spill.fd = ::mkstemp(spill.name.data());
        if (spill.fd < 0) {
            const int err = errno;
            m_spills.erase(shard);
            throw Error(ErrorCode::Io, "cannot create a temporary file in " +
                                           std::filesystem::temp_directory_path().string() + ": " +
                                           std::strerror(err));
        }
        ::unlink(spill.name.c_str()); // the descriptor keeps the data; nothing is left on disk
    }
    Placed p;
    p.shard = shard;
    p.type = replacementType(t->dtype);
    p.offset = spill.size;
    const std::vector<char> bytes = encode(values, p.type);
    writeAll(spill.fd, bytes.data(), bytes.size(), spill.name);
    p.bytes = bytes.size();
    spill.size += p.bytes;
    m_placed[name] = p;
}

std::shared_ptr<const Model> OverlayBuilder::finish()
{
    auto model = std::make_shared<Model>(m_base.format(), m_base.path());
    for (uint32_t i = 0; i < m_base.files().size(); ++i) {
        model->addFile(m_base.files()[i]);
        if (m_base.fileShard(i) != i)
            model->setFileShard(i, m_base.fileShard(i));
    }
    std::map<uint32_t, uint32_t> fileOf; // shard -> its temporary file
    for (auto& [shard, spill] : m_spills) {
        fileOf[shard] = model->addFile(MappedFile::fromDescriptor(spill.fd, spill.name));
        model->setFileShard(fileOf[shard], shard);
        ::close(spill.fd);
        spill.fd = -1;
    }
    for (TensorInfo t : m_base.tensors()) {
        if (auto it = m_placed.find(t.name); it != m_placed.end()) {
            t.fileIndex = fileOf.at(it->second.shard);
            t.offset = it->second.offset;
            t.dtype = it->second.type;
            t.bytes = it->second.bytes;
            t.packed.reset();
        }
        model->addTensor(std::move(t));
    }
    model->mutableConfig() = m_base.config();
    model->mutableMetadata() = m_base.metadata();
    for (const auto& w : m_base.warnings())
        model->addWarning(w);
    model->finalize();
    m_placed.clear();
    m_spills.clear();
    return model;
}

std::shared_ptr<const Model> modelWithTensors(const Model& base,
                                              const std::map<std::string, std::vector<float>>& replacements)
{
    OverlayBuilder builder(base);
    for (const auto& [name, values] : replacements)
        builder.replace(name, values);
    return builder.finish();
}

} // namespace qs
