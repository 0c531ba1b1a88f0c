#pragma once
// Where things are in JSON text. QJsonDocument parses values but forgets their byte positions and silently
// keeps the last of two equal keys; file parsers need both to report "field X at byte N" and to reject
// ambiguous headers. Parse with QJsonDocument first, then use these helpers on the same bytes.

#include <QJsonDocument>
#include <QJsonObject>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qs::json {

struct Member {
    std::string key;    // escapes resolved, UTF-8 (a lone surrogate becomes '?', as QJsonDocument does)
    size_t keyOffset;   // position of the key's opening quote
    size_t valueOffset; // position of the value's first byte
    size_t valueEnd;    // one past the value's last byte
};

// Position of the first byte that is not part of well-formed UTF-8 (overlong forms, surrogates and code
// points above U+10FFFF included), or nullopt.
std::optional<size_t> findInvalidUtf8(std::string_view text);

// Position of the first raw control character (below 0x20) that JSON does not allow: any inside a string
// (a key or a value; they must be written as escapes such as \n or \u0000) and any but whitespace outside
// one. QJsonDocument accepts them, so a key with a raw NUL would otherwise load. nullopt when there is none.
std::optional<size_t> findRawControl(std::string_view text);

// Parses untrusted JSON text strictly: well-formed UTF-8, no raw control characters, then QJsonDocument.
// Errors are qs::FormatError in `file`, field `what`, at byte `base` + position.
QJsonDocument parseDocument(std::string_view text, const std::string& file, const std::string& what,
                            uint64_t base = 0);

// First position at or after `from` that is not JSON whitespace (text.size() when there is none).
size_t skipWhitespace(std::string_view text, size_t from);

// Members of the object whose '{' is at `begin`, in document order. The text should already have been
// accepted by QJsonDocument; on anything unexpected the scan stops (never reads out of bounds) and
// returns what it found. Nesting is skipped iteratively, so depth cannot overflow the stack.
std::vector<Member> objectMembers(std::string_view text, size_t begin);

// The second occurrence of the first key that appears twice, or nullptr.
const Member* findDuplicate(const std::vector<Member>& members);

// Checks UTF-8, parses `text` with QJsonDocument, requires an object and rejects duplicate top-level keys.
// Errors are qs::FormatError in `file`, field `what` (or the duplicated key), at byte `base` + position.
// `members` receives the top-level members in document order.
QJsonObject parseObject(std::string_view text, const std::string& file, uint64_t base,
                        const std::string& what, std::vector<Member>* members);

} // namespace qs::json
