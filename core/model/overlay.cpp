#include "core/model/overlay.h"

#include "core/model/dtype.h"
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

// One unlinked, mapped temporary file holding `chunks` back to back.
std::shared_ptr<MappedFile> tempFileOf(const std::vector<std::vector<char>>& chunks)
{
    std::string path = (std::filesystem::temp_directory_path() / "quantscope-weights-XXXXXX").string();
    int fd = ::mkstemp(path.data());
    if (fd < 0)
        throw Error(ErrorCode::Io, path + ": cannot create: " + std::strerror(errno));
    try {
        for (const auto& c : chunks)
            writeAll(fd, c.data(), c.size(), path);
        ::close(fd);
        fd = -1;
        auto file = MappedFile::open(path);
        std::remove(path.c_str()); // the mapping keeps the data; nothing is left on disk
        return file;
    } catch (...) {
        if (fd >= 0)
            ::close(fd);
        std::remove(path.c_str());
        throw;
    }
}

} // namespace

std::shared_ptr<const Model> modelWithTensors(const Model& base,
                                              const std::map<std::string, std::vector<float>>& replacements)
{
    // Per input file, the replacements of its tensors: one temporary file each, so that a checkpoint writer
    // puts every tensor in the output shard of its input file (Model::fileShard).
    struct Placed {
        uint32_t file = 0;
        uint64_t offset = 0;
        DType type = DType::F32;
        uint64_t bytes = 0;
    };
    std::map<uint32_t, std::vector<std::vector<char>>> chunks;
    std::map<uint32_t, uint64_t> sizes;
    std::map<std::string, Placed> placed;
    for (const auto& [name, values] : replacements) {
        const TensorInfo* t = base.find(name);
        if (!t)
            throw Error(ErrorCode::BadValue, "no tensor '" + name + "' to replace");
        if (values.size() != t->elements())
            throw Error(ErrorCode::BadValue, "the replacement for " + name + " has " +
                                                 std::to_string(values.size()) + " values, the tensor " +
                                                 std::to_string(t->elements()));
        const uint32_t shard = base.fileShard(t->fileIndex);
        Placed p;
        p.type = replacementType(t->dtype);
        p.offset = sizes[shard];
        chunks[shard].push_back(encode(values, p.type));
        p.bytes = chunks[shard].back().size();
        sizes[shard] += p.bytes;
        placed[name] = p;
    }
    auto model = std::make_shared<Model>(base.format(), base.path());
    for (uint32_t i = 0; i < base.files().size(); ++i) {
        model->addFile(base.files()[i]);
        if (base.fileShard(i) != i)
            model->setFileShard(i, base.fileShard(i));
    }
    std::map<uint32_t, uint32_t> fileOf; // shard -> its temporary file
    for (const auto& [shard, list] : chunks) {
        fileOf[shard] = model->addFile(tempFileOf(list));
        model->setFileShard(fileOf[shard], shard);
    }
    for (TensorInfo t : base.tensors()) {
        if (auto it = placed.find(t.name); it != placed.end()) {
            t.fileIndex = fileOf.at(base.fileShard(t.fileIndex));
            t.offset = it->second.offset;
            t.dtype = it->second.type;
            t.bytes = it->second.bytes;
            t.packed.reset();
        }
        model->addTensor(std::move(t));
    }
    model->mutableConfig() = base.config();
    model->mutableMetadata() = base.metadata();
    model->finalize();
    return model;
}

} // namespace qs
