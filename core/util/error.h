#pragma once
// Typed errors for everything the core reads. A parser that rejects input throws qs::FormatError naming
// the field it was reading and the byte offset in the file, so a user can see exactly what is wrong.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace qs {

enum class ErrorCode {
    Io,           // cannot open / map / read a file
    Truncated,    // the file ends before a structure it declares
    BadMagic,     // not the format it claims to be
    BadVersion,   // format version we do not read
    BadValue,     // a field holds a value outside its valid range
    Overflow,     // arithmetic on declared sizes overflows
    Unsupported,  // valid input we cannot handle (yet)
    Cancelled,    // the job was cancelled by the user
    Crashed,      // a sandboxed helper (HDF5 probe) crashed or timed out
    Internal,
};

const char* errorCodeName(ErrorCode code);

class Error : public std::runtime_error {
public:
    Error(ErrorCode code, std::string message);
    ErrorCode code() const { return m_code; }

private:
    ErrorCode m_code;
};

// An error located in a file: what() reads "<file>: <field> at byte <offset>: <message>".
class FormatError : public Error {
public:
    FormatError(ErrorCode code, std::string file, std::string field, std::optional<uint64_t> offset,
                std::string message);
    const std::string& file() const { return m_file; }
    const std::string& field() const { return m_field; }
    std::optional<uint64_t> offset() const { return m_offset; }
    const std::string& detail() const { return m_detail; }

private:
    std::string m_file;
    std::string m_field;
    std::optional<uint64_t> m_offset;
    std::string m_detail;
};

class CancelledError : public Error {
public:
    CancelledError() : Error(ErrorCode::Cancelled, "cancelled") {}
};

} // namespace qs
