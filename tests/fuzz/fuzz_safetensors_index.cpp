// libFuzzer harness for sharded safetensors: the input is model.safetensors.index.json in a scratch folder
// that holds two valid shards (s1: a, b; s2: c, d), a subfolder shard, and a symlink to a shard outside
// the folder. Whatever the index says, the loader must open only files inside the folder, or throw qs::Error.
#include "core/io/safetensors.h"
#include "core/model/model.h"
#include "core/util/error.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;

void writeShard(const fs::path& path, const std::string& a, const std::string& b)
{
    const std::string header = "{\"" + a + "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"" +
                               b + "\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}";
    std::string file(8, '\0');
    for (int i = 0; i < 8; ++i)
        file[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
    file += header + std::string(12, '\x01');
    std::ofstream(path, std::ios::binary) << file;
}

struct Scratch {
    fs::path root, folder;
    Scratch()
    {
        char tmpl[] = "/tmp/fuzz_st_index_XXXXXX";
        root = ::mkdtemp(tmpl);
        folder = root / "model";
        fs::create_directories(folder / "sub");
        writeShard(folder / "s1.safetensors", "a", "b");
        writeShard(folder / "s2.safetensors", "c", "d");
        writeShard(folder / "sub" / "s3.safetensors", "e", "f");
        writeShard(root / "outside.safetensors", "x", "y");
        fs::create_symlink(root / "outside.safetensors", folder / "link.safetensors");
    }
    ~Scratch()
    {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    static Scratch scratch;
    {
        std::ofstream out(scratch.folder / "model.safetensors.index.json",
                          std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    try {
        const auto model = qs::loadSafetensors(scratch.folder, nullptr);
        for (const auto& file : model->files()) {
            const auto canonical = fs::canonical(file->path());
            if (canonical.string().rfind(fs::canonical(scratch.folder).string() + "/", 0) != 0)
                std::abort(); // opened a file outside the folder
        }
        for (const auto& t : model->tensors()) {
            float out[4];
            model->decode(t, 0, t.elements(), out);
        }
    } catch (const qs::Error&) {
    }
    return 0;
}
