#pragma once
// Printers for results: every command hands records (named, typed fields) to the printer of the
// chosen format, so table, tsv, csv, jsonl and paths look the same everywhere.
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

namespace cbir {

enum class OutputFormat { Table, Tsv, Csv, Jsonl, Json, Paths };

std::optional<OutputFormat> parse_output_format(const std::string& name);
std::vector<std::string> output_format_names();

using FieldValue = std::variant<std::string, int64_t, double>;
using Record = std::vector<FieldValue>;  // one value per column, in column order

class RecordPrinter {
public:
    virtual ~RecordPrinter() = default;
    virtual void record(const Record& values) = 0;
    virtual void finish() = 0;  // the table prints here, once it knows the column widths
};

// columns: field names (the header of table/tsv/csv, the keys of json/jsonl; a text value that is
// not valid UTF-8 is shown with U+FFFD there and given exactly, in base64, as "<name>_bytes";
// table, tsv, csv and paths print its bytes as they are). `paths` prints only
// the column named "path", each ended by a newline, or by NUL with null_terminated (for xargs -0).
std::unique_ptr<RecordPrinter> make_printer(OutputFormat format, std::ostream& out, std::vector<std::string> columns,
                                            bool null_terminated = false);

// A path as the user should see it: relative to the working directory when it lies inside it, so
// that it can be passed straight to another command; absolute otherwise.
std::string display_path(const std::string& absolute_path);

}  // namespace cbir
