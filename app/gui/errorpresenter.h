#pragma once
// How the window's parts report a failure to the user: a title, a one-line text and the detail. The
// window passes its presenter to them; tests replace it to collect the messages instead.

#include <QString>
#include <functional>

class QWidget;

namespace qs {

using ErrorPresenter = std::function<void(const QString& title, const QString& text, const QString& detail)>;

// A window-modal critical QMessageBox opened without blocking (open(), no nested event loop).
ErrorPresenter messageBoxPresenter(QWidget* parent);

} // namespace qs
