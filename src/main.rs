fn main() {
    cargo_dyndev::main()
}
