"""Pure annotation logic: geometry rules, history, export formats, and their errors."""
