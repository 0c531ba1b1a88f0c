// libFuzzer harness for qs::readHfConfig: the input is config.json (in a memfd). qs::Error is the expected
// outcome for bad input; a crash, sanitizer report or any other exception is a finding.
#include "core/model/model.h"
#include "core/util/error.h"

#include <cstdint>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const int fd = memfd_create("config.json", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t written = 0;
    while (written < size) {
        const ssize_t n = ::write(fd, data + written, size - written);
        if (n <= 0)
            break;
        written += static_cast<size_t>(n);
    }
    try {
        const auto config = qs::readHfConfig("/proc/self/fd/" + std::to_string(fd));
        (void)config;
    } catch (const qs::Error&) {
    }
    ::close(fd);
    return 0;
}
