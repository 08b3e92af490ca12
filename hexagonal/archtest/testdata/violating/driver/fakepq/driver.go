// Package fakepq stands for a database driver.
package fakepq

// Name is the driver's name.
const Name = "fakepq"
