#include "output/printer.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/byte_text.h"

namespace cbir {
namespace {

std::string plain_text(const FieldValue& v) {
    if (auto s = std::get_if<std::string>(&v)) return *s;
    if (auto i = std::get_if<int64_t>(&v)) return std::to_string(*i);
    // Values are float32 at heart (distances): the shortest text that reads back as the same float.
    return fmt::format("{}", static_cast<float>(std::get<double>(v)));
}

class TablePrinter final : public RecordPrinter {
public:
    TablePrinter(std::ostream& out, std::vector<std::string> columns) : out_(out), columns_(std::move(columns)) {}
    void record(const Record& values) override {
        std::vector<std::string> row;
        for (const auto& v : values)
            row.push_back(std::holds_alternative<double>(v) ? fmt::format("{:.4f}", std::get<double>(v)) : plain_text(v));
        numeric_.resize(values.size(), true);
        for (size_t i = 0; i < values.size(); ++i)
            if (std::holds_alternative<std::string>(values[i])) numeric_[i] = false;
        rows_.push_back(std::move(row));
    }
    void finish() override {
        std::vector<size_t> width(columns_.size());
        for (size_t i = 0; i < columns_.size(); ++i) width[i] = columns_[i].size();
        for (const auto& row : rows_)
            for (size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
        auto print_row = [&](const std::vector<std::string>& row) {
            std::string line;
            for (size_t i = 0; i < row.size(); ++i) {
                const bool last = i + 1 == row.size();
                const bool right = i < numeric_.size() && numeric_[i];
                if (right)
                    line += fmt::format("{:>{}}", row[i], width[i]);
                else
                    line += last ? row[i] : fmt::format("{:<{}}", row[i], width[i]);
                if (!last) line += "  ";
            }
            out_ << line << '\n';
        };
        if (!rows_.empty()) {
            numeric_.resize(columns_.size(), false);
            print_row(columns_);
        }
        for (const auto& row : rows_) print_row(row);
        out_.flush();
    }

private:
    std::ostream& out_;
    std::vector<std::string> columns_;
    std::vector<std::vector<std::string>> rows_;
    std::vector<bool> numeric_;
};

class DelimitedPrinter final : public RecordPrinter {
public:
    DelimitedPrinter(std::ostream& out, std::vector<std::string> columns, char separator)
        : out_(out), separator_(separator) {
        Record header(columns.begin(), columns.end());
        record(header);
    }
    void record(const Record& values) override {
        for (size_t i = 0; i < values.size(); ++i) {
            if (i) out_ << separator_;
            out_ << escape(plain_text(values[i]));
        }
        out_ << '\n';
    }
    void finish() override { out_.flush(); }

private:
    std::string escape(const std::string& text) const {
        if (separator_ == '\t') {
            // TSV has no quoting: tabs and newlines inside a value become escapes.
            std::string out;
            for (char c : text) {
                if (c == '\t') out += "\\t";
                else if (c == '\n') out += "\\n";
                else if (c == '\r') out += "\\r";
                else if (c == '\\') out += "\\\\";
                else out += c;
            }
            return out;
        }
        // RFC 4180: quote fields with separators, quotes or line breaks; double the quotes.
        if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
        std::string out = "\"";
        for (char c : text) {
            if (c == '"') out += '"';
            out += c;
        }
        return out + "\"";
    }
    std::ostream& out_;
    char separator_;
};

// The same digits as tsv and csv print (the shortest text of the float32 value), not the 17 of
// its double: 0.0247, not 0.024699926376342773.
double json_number(double value) {
    if (!std::isfinite(value)) return value;
    return std::strtod(fmt::format("{}", static_cast<float>(value)).c_str(), nullptr);
}

// A text field that is not valid UTF-8 (a file name may hold any bytes) gets "<name>_bytes" beside
// its display form, so that a script can get back to the file.
nlohmann::ordered_json to_object(const std::vector<std::string>& columns, const Record& values) {
    nlohmann::ordered_json object;
    for (size_t i = 0; i < values.size() && i < columns.size(); ++i) {
        if (const auto* text = std::get_if<std::string>(&values[i]))
            set_text_field(object, columns[i], *text);
        else if (const auto* number = std::get_if<double>(&values[i]))
            object[columns[i]] = json_number(*number);
        else
            object[columns[i]] = std::get<int64_t>(values[i]);
    }
    return object;
}

std::string dump(const nlohmann::ordered_json& value, int indent) { return dump_json(value, indent); }

class JsonlPrinter final : public RecordPrinter {
public:
    JsonlPrinter(std::ostream& out, std::vector<std::string> columns) : out_(out), columns_(std::move(columns)) {}
    void record(const Record& values) override { out_ << dump(to_object(columns_, values), -1) << '\n'; }
    void finish() override { out_.flush(); }

private:
    std::ostream& out_;
    std::vector<std::string> columns_;
};

class JsonPrinter final : public RecordPrinter {
public:
    JsonPrinter(std::ostream& out, std::vector<std::string> columns) : out_(out), columns_(std::move(columns)) {}
    void record(const Record& values) override { rows_.push_back(to_object(columns_, values)); }
    void finish() override { out_ << dump(rows_, 1) << '\n' << std::flush; }

private:
    std::ostream& out_;
    std::vector<std::string> columns_;
    nlohmann::ordered_json rows_ = nlohmann::ordered_json::array();
};

class PathsPrinter final : public RecordPrinter {
public:
    PathsPrinter(std::ostream& out, const std::vector<std::string>& columns, char terminator)
        : out_(out), terminator_(terminator) {
        for (size_t i = 0; i < columns.size(); ++i)
            if (columns[i] == "path") column_ = i;
    }
    void record(const Record& values) override {
        if (column_ < values.size()) out_ << plain_text(values[column_]) << terminator_;
    }
    void finish() override { out_.flush(); }

private:
    std::ostream& out_;
    char terminator_;
    size_t column_ = static_cast<size_t>(-1);
};

}  // namespace

std::optional<OutputFormat> parse_output_format(const std::string& name) {
    if (name == "table") return OutputFormat::Table;
    if (name == "tsv") return OutputFormat::Tsv;
    if (name == "csv") return OutputFormat::Csv;
    if (name == "jsonl") return OutputFormat::Jsonl;
    if (name == "json") return OutputFormat::Json;
    if (name == "paths") return OutputFormat::Paths;
    return std::nullopt;
}

std::vector<std::string> output_format_names() { return {"table", "tsv", "csv", "jsonl", "json", "paths"}; }

std::unique_ptr<RecordPrinter> make_printer(OutputFormat format, std::ostream& out, std::vector<std::string> columns,
                                            bool null_terminated) {
    switch (format) {
        case OutputFormat::Table: return std::make_unique<TablePrinter>(out, std::move(columns));
        case OutputFormat::Tsv: return std::make_unique<DelimitedPrinter>(out, std::move(columns), '\t');
        case OutputFormat::Csv: return std::make_unique<DelimitedPrinter>(out, std::move(columns), ',');
        case OutputFormat::Jsonl: return std::make_unique<JsonlPrinter>(out, std::move(columns));
        case OutputFormat::Json: return std::make_unique<JsonPrinter>(out, std::move(columns));
        case OutputFormat::Paths: return std::make_unique<PathsPrinter>(out, columns, null_terminated ? '\0' : '\n');
    }
    return nullptr;
}

std::string display_path(const std::string& absolute_path) {
    std::error_code ec;
    const std::filesystem::path cwd = std::filesystem::current_path(ec);
    if (ec) return absolute_path;
    const std::filesystem::path relative = std::filesystem::path(absolute_path).lexically_relative(cwd);
    if (relative.empty() || *relative.begin() == "..") return absolute_path;
    return relative.string();
}

}  // namespace cbir
