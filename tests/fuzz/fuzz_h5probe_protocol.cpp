// Fuzzes the core side of the HDF5 probe protocol: the probe's stdout is as untrusted as the file it read,
// so parseProbeOutput + buildModel must turn any byte string into a Model whose every tensor lies inside
// the mapped files, or into a qs::Error — never a crash, an out-of-bounds read or a huge allocation. The
// model is then read as an activation statistics file (core/infer/activationstats.h) as well.
#include "core/infer/activationstats.h"
#include "core/io/hdf5_protocol.h"
#include "core/model/mappedfile.h"
#include "core/model/model.h"
#include "core/util/error.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

std::shared_ptr<qs::MappedFile> g_file;
std::shared_ptr<qs::MappedFile> g_copy;

std::shared_ptr<qs::MappedFile> makeFile(const char* tag, size_t size)
{
    char path[] = "/tmp/fuzz-h5probe-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0)
        std::abort();
    std::vector<unsigned char> bytes(size);
    for (size_t i = 0; i < size; ++i)
        bytes[i] = static_cast<unsigned char>(i * 131 + tag[0]);
    if (write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
        std::abort();
    close(fd);
    auto file = qs::MappedFile::open(path);
    unlink(path);
    return file;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    g_file = makeFile("f", 4096);
    g_copy = makeFile("c", 1024);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    size_t malformed = 0;
    const auto out = qs::h5::parseProbeOutput(text, &malformed);
    if (out.errorCode)
        return 0;
    try {
        auto model = qs::h5::buildModel("fuzz.h5", out, g_file, (size & 1) ? g_copy : nullptr);
        std::vector<float> buf;
        for (const auto& t : model->tensors()) {
            if (!qs::dtypeInfo(t.dtype).decodable || t.elements() > 4096)
                continue;
            buf.resize(t.elements());
            model->decode(t, 0, t.elements(), buf.data());
        }
        // An activation statistics file read from the same model (its names, shapes and values checked).
        qs::activationStatsFromModel(*model, "fuzz.h5");
    } catch (const qs::Error&) {
    }
    return 0;
}
