#include "core/model/overlay.h"

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

} // namespace

std::shared_ptr<const Model> modelWithTensors(const Model& base,
                                              const std::map<std::string, std::vector<float>>& replacements)
{
    for (const auto& [name, values] : replacements) {
        const TensorInfo* t = base.find(name);
        if (!t)
            throw Error(ErrorCode::BadValue, "no tensor '" + name + "' to replace");
        if (values.size() != t->elements())
            throw Error(ErrorCode::BadValue, "the replacement for " + name + " has " +
                                                 std::to_string(values.size()) + " values, the tensor " +
                                                 std::to_string(t->elements()));
    }
    auto model = std::make_shared<Model>(base.format(), base.path());
    for (const auto& f : base.files())
        model->addFile(f);
    if (!replacements.empty()) {
        std::string path = (std::filesystem::temp_directory_path() / "quantscope-weights-XXXXXX").string();
        int fd = ::mkstemp(path.data());
        if (fd < 0)
            throw Error(ErrorCode::Io, path + ": cannot create: " + std::strerror(errno));
        std::map<std::string, uint64_t> offsets;
        uint64_t at = 0;
        try {
            for (const auto& [name, values] : replacements) {
                offsets[name] = at;
                writeAll(fd, reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float),
                         path);
                at += values.size() * sizeof(float);
            }
            ::close(fd);
            fd = -1;
            const uint32_t index = model->addFile(MappedFile::open(path));
            std::remove(path.c_str()); // the mapping keeps the data; nothing is left on disk
            for (TensorInfo t : base.tensors()) {
                if (auto it = offsets.find(t.name); it != offsets.end()) {
                    t.dtype = DType::F32;
                    t.bytes = t.elements() * sizeof(float);
                    t.fileIndex = index;
                    t.offset = it->second;
                    t.packed.reset();
                }
                model->addTensor(std::move(t));
            }
        } catch (...) {
            if (fd >= 0)
                ::close(fd);
            std::remove(path.c_str());
            throw;
        }
    } else {
        for (const TensorInfo& t : base.tensors())
            model->addTensor(t);
    }
    model->mutableConfig() = base.config();
    model->mutableMetadata() = base.metadata();
    model->finalize();
    return model;
}

} // namespace qs
