#pragma once
// A whole file into memory, with the reason when it cannot be read.
#include <filesystem>
#include <optional>
#include <string>

namespace cbir {

// The file's bytes; nullopt with `error` set ("cannot open: …", "read error") on failure.
std::optional<std::string> read_whole_file(const std::filesystem::path& path, std::string& error);

}  // namespace cbir
