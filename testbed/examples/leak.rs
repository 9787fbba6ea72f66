fn main() -> anyhow::Result<()> {
    let d = testbed::Dovecot::start()?;
    println!("{}", d.dir().display());
    std::mem::forget(d);
    std::process::exit(0)
}
