#pragma once
// File names on Linux are bytes; JSON strings are UTF-8. A name that is not valid UTF-8 (Latin-1,
// say) is shown with U+FFFD for its invalid bytes, which is no longer the file's name, so it also
// travels in base64 (RFC 4648, padded), which gives the bytes back exactly.
#include <optional>
#include <string>
#include <string_view>

namespace cbir {

bool is_valid_utf8(std::string_view text);
// The text with each invalid byte sequence replaced by U+FFFD (as nlohmann's dump(replace) does).
std::string displayable_utf8(std::string_view text);

// The text on one line: control characters (a library's message may end in a newline or span
// several) become spaces, each run of spaces one, and none is left at either end. Errors are one line.
std::string one_line(std::string_view text);

std::string base64_encode(std::string_view bytes);
// nullopt when `text` is not padded base64.
std::optional<std::string> base64_decode(std::string_view text);

// object[key] = text for JSON: when text is not valid UTF-8, its display form, and the exact bytes
// in base64 as object[key + "_bytes"]. One rule for every JSON a cbir command or server writes.
template <class Json>
void set_text_field(Json& object, const std::string& key, const std::string& text) {
    if (is_valid_utf8(text)) {
        object[key] = text;
        return;
    }
    object[key] = displayable_utf8(text);
    object[key + "_bytes"] = base64_encode(text);
}

// JSON text that cannot fail: any invalid UTF-8 left in a value is replaced rather than thrown on,
// so an answer built after a write was committed is always sent.
template <class Json>
std::string dump_json(const Json& value, int indent = -1) {
    return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace cbir
