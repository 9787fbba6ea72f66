fn main() -> anyhow::Result<()> {
    let t = std::time::Instant::now();
    let d = testbed::Dovecot::start()?;
    println!("start {:?}", t.elapsed());
    let t = std::time::Instant::now();
    d.add_user("support", "x")?;
    println!("add_user {:?}", t.elapsed());
    let t = std::time::Instant::now();
    d.restart()?;
    println!("restart {:?}", t.elapsed());
    let t = std::time::Instant::now();
    drop(d);
    println!("drop {:?}", t.elapsed());
    Ok(())
}
