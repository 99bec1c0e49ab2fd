package execution

// InPlace exposes inPlace to the tests.
var InPlace = inPlace
