// Format detection: by content where the format has a signature, by name otherwise.
#include "core/io/gguf.h"
#include "core/io/hdf5.h"
#include "core/io/safetensors.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "core/util/fileio.h"
#include "core/util/job.h"

#include <array>
#include <cstring>
#include <unistd.h>

namespace qs {

namespace {

std::array<char, 8> readSignature(const std::filesystem::path& path)
{
    // Refuses FIFOs, devices and sockets before reading anything (opening a FIFO would block forever).
    std::array<char, 8> sig{};
    const int fd = openRegularFile(path, nullptr);
    const ssize_t n = ::read(fd, sig.data(), sig.size());
    ::close(fd);
    if (n < 0)
        throw Error(ErrorCode::Io, path.string() + ": cannot read");
    return sig;
}

bool endsWith(const std::string& s, std::string_view suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

} // namespace

std::shared_ptr<Model> openModel(const std::filesystem::path& path, JobControl* job)
{
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        if (std::filesystem::exists(path / "model.safetensors.index.json") ||
            std::filesystem::exists(path / "model.safetensors"))
            return loadSafetensors(path, job);
        for (const auto& entry : std::filesystem::directory_iterator(path, ec))
            if (entry.path().extension() == ".safetensors")
                return loadSafetensors(path, job);
        if (std::filesystem::exists(path / "config.json"))
            return openModel(path / "config.json", job);
        throw Error(ErrorCode::Unsupported, path.string() + ": folder holds no safetensors model or config.json");
    }
    if (!std::filesystem::exists(path, ec))
        throw Error(ErrorCode::Io, path.string() + ": no such file");

    const auto sig = readSignature(path);
    const std::string name = path.filename().string();
    if (std::memcmp(sig.data(), "GGUF", 4) == 0)
        return loadGguf(path, job);
    if (std::memcmp(sig.data(), "\x89HDF\r\n\x1a\n", 8) == 0)
        return loadHdf5(path, job);
    if (endsWith(name, ".safetensors") || endsWith(name, ".safetensors.index.json"))
        return loadSafetensors(path, job);
    if (endsWith(name, ".gguf"))
        return loadGguf(path, job); // reports the bad magic
    if (endsWith(name, ".h5") || endsWith(name, ".hdf5") || endsWith(name, ".keras"))
        return loadHdf5(path, job);
    if (endsWith(name, ".json")) {
        auto model = std::make_shared<Model>(ModelFormat::ConfigOnly, path);
        model->mutableConfig() = readHfConfig(path);
        model->finalize();
        return model;
    }
    throw Error(ErrorCode::Unsupported,
                path.string() + ": unknown model format (expected .safetensors, .gguf, .h5 or config.json)");
}

} // namespace qs
