module example.com/orders-violating

go 1.26
