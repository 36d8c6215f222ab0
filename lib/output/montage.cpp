#include "output/montage.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "image/codecs.h"
#include "image/decode.h"
#include "image/image_file.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace cbir {
namespace {

constexpr int kPadding = 6;
constexpr int kCaptionHeight = 26;

cv::Mat load_thumbnail(const std::filesystem::path& path, int side) {
    const ImageFile file = read_image_file(path);
    if (!file.ok()) return {};
    DecodedImage decoded = decode_image_bytes(file.bytes);
    if (!decoded.ok()) return {};
    const double scale = static_cast<double>(side) / std::max(decoded.rgb.cols, decoded.rgb.rows);
    cv::Mat small;
    cv::resize(decoded.rgb, small, cv::Size(std::max(1, int(decoded.rgb.cols * scale)), std::max(1, int(decoded.rgb.rows * scale))),
               0, 0, cv::INTER_AREA);
    cv::Mat bgr;
    cv::cvtColor(small, bgr, cv::COLOR_RGB2BGR);
    return bgr;
}

}  // namespace

std::string fitted_caption(const std::string& caption, int width) {
    const auto text_width = [](const std::string& text) {
        int baseline = 0;
        return cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, 0.5, 1, &baseline).width;
    };
    if (text_width(caption) <= width) return caption;
    const size_t second_space = caption.find(' ', caption.find(' ') + 1);
    const std::string head = second_space == std::string::npos ? std::string() : caption.substr(0, second_space + 1);
    std::string tail = second_space == std::string::npos ? caption : caption.substr(second_space + 1);
    while (!tail.empty() && text_width(head + "..." + tail) > width) tail.erase(0, 1);
    return head + "..." + tail;
}

int montage_tile_width(const MontageLayout& layout) { return layout.thumbnail + 2 * kPadding; }
int montage_tile_height(const MontageLayout& layout) { return layout.thumbnail + kCaptionHeight + 2 * kPadding; }

std::optional<std::string> montage_encoding(const std::filesystem::path& output) {
    std::string ext = output.extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".png") return ".png";
    if (ext == ".jpg" || ext == ".jpeg") return ".jpg";
    return std::nullopt;
}

std::pair<int, int> write_montage(const std::filesystem::path& output, const std::vector<std::vector<MontageTile>>& groups,
                                  const MontageLayout& layout) {
    const auto encoding = montage_encoding(output);
    if (!encoding) throw Error(output.string() + ": a contact sheet is written as .png or .jpg");
    size_t widest = 1;
    for (const auto& group : groups) widest = std::max(widest, group.size());
    const int columns = layout.columns > 0 ? layout.columns : static_cast<int>(std::min<size_t>(widest, kMaxRowTiles));
    int rows = 0;
    for (const auto& group : groups) rows += std::max<int>(1, (static_cast<int>(group.size()) + columns - 1) / columns);
    const int tile_w = montage_tile_width(layout), tile_h = montage_tile_height(layout);
    cv::Mat sheet(std::max(1, rows) * tile_h, columns * tile_w, CV_8UC3, cv::Scalar(255, 255, 255));
    int row = 0;
    for (const auto& group : groups) {
        for (size_t i = 0; i < group.size(); ++i) {
            const int x0 = static_cast<int>(i % columns) * tile_w, y0 = (row + static_cast<int>(i / columns)) * tile_h;
            cv::Mat thumb = load_thumbnail(group[i].image, layout.thumbnail);
            if (thumb.empty()) thumb = cv::Mat(layout.thumbnail, layout.thumbnail, CV_8UC3, cv::Scalar(200, 200, 200));
            // Centred in the thumbnail square.
            const int x = x0 + kPadding + (layout.thumbnail - thumb.cols) / 2;
            const int y = y0 + kPadding + (layout.thumbnail - thumb.rows) / 2;
            thumb.copyTo(sheet(cv::Rect(x, y, thumb.cols, thumb.rows)));
            if (i == 0) cv::rectangle(sheet, cv::Rect(x0 + 1, y0 + 1, tile_w - 2, tile_h - 2), cv::Scalar(0, 140, 255), 2);
            cv::putText(sheet, fitted_caption(group[i].caption, layout.thumbnail),
                        cv::Point(x0 + kPadding, y0 + kPadding + layout.thumbnail + 19),
                        cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(30, 30, 30), 1, cv::LINE_AA);
        }
        row += std::max<int>(1, (static_cast<int>(group.size()) + columns - 1) / columns);
    }
    std::vector<uchar> bytes;
    if (!encode_with_opencv(*encoding, sheet, bytes, {cv::IMWRITE_JPEG_QUALITY, 90}))
        throw Error(output.string() + ": cannot encode the contact sheet");
    AtomicFileWriter out(output);
    out.write(bytes.data(), bytes.size());
    out.commit();
    return {sheet.cols, sheet.rows};
}

}  // namespace cbir
