#pragma once
// Atomic, durable writes. AtomicFile writes to a temporary file in the destination's folder; commit()
// checks every write, flushes, fsyncs the file, renames it over the destination and fsyncs the folder.
// A failed or abandoned write (destructor without commit) removes the temporary file and never touches an
// existing file of the same name. Every failure throws qs::Error(Io) naming the file and the reason
// (strerror, e.g. "No space left on device").
//
// AtomicFileSet commits several files (a sharded output) so that they appear whole or not at all: every
// file is written and fsynced under a temporary name first, then all are renamed; a failure before the
// renames leaves nothing, a failure during them removes the files it already renamed.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

class AtomicFile {
public:
    explicit AtomicFile(std::filesystem::path destination);
    ~AtomicFile(); // removes the temporary file unless committed
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    AtomicFile(AtomicFile&&) noexcept;
    AtomicFile& operator=(AtomicFile&&) = delete;

    const std::filesystem::path& destination() const { return m_destination; }
    const std::filesystem::path& temporaryPath() const { return m_temporary; }
    uint64_t bytesWritten() const { return m_written; }

    // Appends bytes (loops over short writes; EINTR retried). Throws qs::Error(Io).
    void write(const void* data, size_t size);
    void write(std::string_view data) { write(data.data(), data.size()); }
    // Appends `count` zero bytes (padding).
    void writeZeros(uint64_t count);
    // fsync the data; rename over the destination; fsync the folder. Throws qs::Error(Io).
    void commit();

    // For AtomicFileSet: fsync without renaming, then rename later.
    void sync();
    void renameIntoPlace();

    // Test hook: when set, the write that would bring the total past this many bytes fails with ENOSPC.
    static void setFailAfterBytesForTesting(uint64_t bytes); // 0: off

private:
    std::filesystem::path m_destination;
    std::filesystem::path m_temporary;
    int m_fd = -1;
    uint64_t m_written = 0;
    bool m_committed = false;
};

class AtomicFileSet {
public:
    AtomicFileSet() = default;
    AtomicFile& add(const std::filesystem::path& destination);
    void commit(); // all or nothing
    size_t size() const { return m_files.size(); }

private:
    std::vector<std::unique_ptr<AtomicFile>> m_files;
};

// For writers that can only write to a path (image and PDF libraries): write to temporaryPathBeside(dest),
// then commitTemporaryFile(temporary, dest) fsyncs it, renames it over dest and fsyncs the folder. On any
// failure the temporary file is removed and dest is untouched. Throws qs::Error(Io).
std::filesystem::path temporaryPathBeside(const std::filesystem::path& destination);
void commitTemporaryFile(const std::filesystem::path& temporary, const std::filesystem::path& destination);

// Writes a whole file atomically (small files: JSON, config). Throws qs::Error(Io).
void writeFileAtomically(const std::filesystem::path& destination, std::string_view contents);

// Free bytes on the filesystem holding `path` (its folder when it does not exist yet); max on error.
uint64_t freeDiskBytes(const std::filesystem::path& path);

} // namespace qs
