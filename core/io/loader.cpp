// Format detection: by content where the format has a signature, by name otherwise.
#include "core/io/loader.h"

#include "core/io/gguf.h"
#include "core/io/hdf5.h"
#include "core/io/safetensors.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "core/util/fileio.h"
#include "core/util/job.h"

#include <cstring>
#include <unistd.h>

namespace qs {

namespace {

FileSignature readSignature(const std::filesystem::path& path)
{
    // Refuses FIFOs, devices and sockets before reading anything (opening a FIFO would block forever).
    FileSignature sig{};
    const int fd = openRegularFile(path, nullptr);
    const ssize_t n = ::read(fd, sig.data(), sig.size());
    ::close(fd);
    if (n < 0)
        throw Error(ErrorCode::Io, path.string() + ": cannot read");
    return sig;
}

bool isGguf(const FileSignature& sig)
{
    return std::memcmp(sig.data(), "GGUF", 4) == 0;
}

bool isHdf5(const FileSignature& sig)
{
    return std::memcmp(sig.data(), "\x89HDF\r\n\x1a\n", 8) == 0;
}

std::shared_ptr<Model> openConfig(const std::filesystem::path& path, JobControl*)
{
    auto model = std::make_shared<Model>(ModelFormat::ConfigOnly, path);
    model->mutableConfig() = readHfConfig(path);
    model->finalize();
    return model;
}

constexpr std::string_view kSafetensorsSuffixes[] = {".safetensors", ".safetensors.index.json"};
constexpr std::string_view kGgufSuffixes[] = {".gguf"};
constexpr std::string_view kHdf5Suffixes[] = {".h5", ".hdf5", ".keras"};
constexpr std::string_view kConfigSuffixes[] = {".json"};

// A .gguf without the magic still goes to the GGUF loader, which reports the bad magic.
const LoaderInfo kLoaders[] = {
    {"safetensors", kSafetensorsSuffixes, nullptr, loadSafetensors},
    {"GGUF", kGgufSuffixes, isGguf, loadGguf},
    {"HDF5 / Keras", kHdf5Suffixes, isHdf5, loadHdf5},
    {"Hugging Face config", kConfigSuffixes, nullptr, openConfig},
};

} // namespace

std::span<const LoaderInfo> modelLoaders()
{
    return kLoaders;
}

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
        throw Error(ErrorCode::Unsupported,
                    path.string() + ": folder holds no safetensors model or config.json");
    }
    if (!std::filesystem::exists(path, ec))
        throw Error(ErrorCode::Io, path.string() + ": no such file");

    const FileSignature sig = readSignature(path);
    for (const LoaderInfo& l : kLoaders)
        if (l.sniff && l.sniff(sig))
            return l.open(path, job);
    const std::string name = path.filename().string();
    for (const LoaderInfo& l : kLoaders)
        for (std::string_view suffix : l.suffixes)
            if (name.ends_with(suffix))
                return l.open(path, job);
    throw Error(ErrorCode::Unsupported,
                path.string() + ": unknown model format (expected .safetensors, .gguf, .h5 or config.json)");
}

} // namespace qs
